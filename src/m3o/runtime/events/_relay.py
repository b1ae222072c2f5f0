"""The ``platform`` profile's relay: committed outbox rows to Redis Streams.

Publishing writes ``runtime_event_outbox`` rows in the caller's transaction. The relay
locks a batch of rows (``FOR UPDATE SKIP LOCKED``, so the relays of many processes share
the work), appends them to their topics' streams ``m3o:events:<topic>`` (one script run
for the batch) and deletes the rows in the same transaction. Each append records a marker
for its row (its id, in a hash per minute of event time), so a row appended but not deleted
(the database commit failed) is not appended twice within ``dedupe_ttl``. Nothing
committed is lost: a row leaves the outbox only after Redis has it. Streams are trimmed to
``retention``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.events import DeadLetter
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events.tables import outbox
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.runtime.store.ids import time_ordered_id

__all__ = [
    "DEFAULT_RETENTION",
    "Relay",
    "entry_fields",
    "marker_bucket",
    "min_kept_id",
    "stream_key",
]

_log = get_logger(__name__)

# KEYS: stream, marker bucket, for each entry in turn. ARGV: marker ttl (s), min id kept,
# then for each entry its marker, the number of its field/values and those. One run appends
# every entry whose marker is in neither its bucket nor earlier in the batch, and records
# the markers: one HMGET, one HSET and one EXPIRE per bucket (per 500 markers), not a
# command per entry besides its XADD.
_APPEND_MANY = """
local entries, buckets, bucket_order = {}, {}, {}
local at = 3
for i = 1, #KEYS, 2 do
  local count = tonumber(ARGV[at + 1])
  local entry = {stream = KEYS[i], bucket = KEYS[i + 1], marker = ARGV[at],
                 first = at + 2, last = at + 1 + count}
  entries[#entries + 1] = entry
  if buckets[entry.bucket] == nil then
    buckets[entry.bucket] = {markers = {}, seen = {}, added = {}}
    bucket_order[#bucket_order + 1] = entry.bucket
  end
  local markers = buckets[entry.bucket].markers
  markers[#markers + 1] = entry.marker
  at = at + 2 + count
end
for _, key in ipairs(bucket_order) do
  local bucket = buckets[key]
  for first = 1, #bucket.markers, 500 do
    local chunk = {unpack(bucket.markers, first, math.min(first + 499, #bucket.markers))}
    local found = redis.call('HMGET', key, unpack(chunk))
    for j, marker in ipairs(chunk) do
      if found[j] then
        bucket.seen[marker] = true
      end
    end
  end
end
for _, entry in ipairs(entries) do
  local bucket = buckets[entry.bucket]
  if not bucket.seen[entry.marker] then
    bucket.seen[entry.marker] = true
    redis.call('XADD', entry.stream, 'MINID', '~', ARGV[2], '*',
               unpack(ARGV, entry.first, entry.last))
    bucket.added[#bucket.added + 1] = entry.marker
    bucket.added[#bucket.added + 1] = '1'
  end
end
for _, key in ipairs(bucket_order) do
  local added = buckets[key].added
  if #added > 0 then
    for first = 1, #added, 1000 do
      redis.call('HSET', key, unpack(added, first, math.min(first + 999, #added)))
    end
    redis.call('EXPIRE', key, ARGV[1], 'NX')
  end
end
return 0
"""

DEFAULT_RETENTION = timedelta(days=7)
"""How long a stream keeps its entries (trimmed as entries are appended)."""
MARKER_BUCKET = 60
"""Seconds of event time whose markers share one hash (``m3o:events-relayed:<minute>``)."""


def stream_key(topic: str) -> str:
    return f"m3o:events:{topic}"


def min_kept_id(retention: timedelta) -> str:
    """The oldest stream entry id an append keeps (``XADD ... MINID ~``): entries older
    than ``retention`` are trimmed."""
    return str(int((datetime.now(UTC) - retention).timestamp() * 1000))


def marker_bucket(time: datetime) -> str:
    """The hash holding the markers of events of ``time``'s minute."""
    return f"m3o:events-relayed:{int(time.timestamp()) // MARKER_BUCKET}"


class Relay:
    """Moves the outbox into Redis Streams; every process may run one."""

    def __init__(
        self,
        sessions: SessionFactory,
        redis: aioredis.Redis,
        *,
        poll_interval: float = 1.0,
        batch: int = 200,
        retention: timedelta = DEFAULT_RETENTION,
        dedupe_ttl: timedelta = timedelta(minutes=10),
        call_timeout: float = 5.0,
        outage_backoff_max: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._poll = poll_interval
        self._batch = batch
        self._retention = retention
        self._dedupe_ttl = dedupe_ttl
        self._timeout = call_timeout
        self._outage_max = outage_backoff_max
        self._append_many = redis.register_script(_APPEND_MANY)
        self._woken = asyncio.Event()

    async def write(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        """Add events to the outbox (the publisher's writer): one statement for them all."""
        await self._write_rows(session, envelopes, row_ids=[time_ordered_id() for _ in envelopes])

    async def append_now(self, envelopes: Sequence[Envelope]) -> None:
        """Append events straight to their streams, bypassing the outbox: one script run.

        Each append is marked with the event id, so :meth:`write_unsent` of the same events
        (after a failure here that may have appended some) appends none of them twice.
        Raises what Redis raised, or TimeoutError after ``call_timeout``.
        """
        await self._append_all(
            (envelope.topic, envelope.id, envelope.time, entry_fields(envelope.id, envelope, None))
            for envelope in envelopes
        )

    async def write_unsent(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        """Outbox rows for events :meth:`append_now` could not (surely) append: relayed
        later, except those it did append (their rows carry the event id as marker)."""
        await self._write_rows(session, envelopes, row_ids=[envelope.id for envelope in envelopes])

    async def _write_rows(
        self, session: AsyncSession, envelopes: Sequence[Envelope], *, row_ids: list[str]
    ) -> None:
        now = datetime.now(UTC)
        await session.execute(
            insert(outbox),
            [
                {
                    "id": row_id,
                    "created": now + timedelta(microseconds=place),  # relayed in this order
                    "event_id": envelope.id,
                    "topic": envelope.topic,
                    "type_name": envelope.type_name,
                    "time": envelope.time,
                    "payload": envelope.payload,
                    "target_group": None,
                    "traceparent": envelope.traceparent or None,
                }
                for place, (row_id, envelope) in enumerate(zip(row_ids, envelopes, strict=True))
            ],
        )

    async def requeue(self, session: AsyncSession, letter: DeadLetter) -> None:
        """Add a dead letter's event to the outbox, addressed to its group only."""
        await self._insert(
            session,
            event_id=letter.event_id,
            topic=letter.topic,
            type_name=letter.type_name,
            time=letter.time,
            payload=letter.payload,
            target_group=letter.group,
        )

    async def _insert(self, session: AsyncSession, **values: object) -> None:
        await session.execute(
            insert(outbox).values(id=time_ordered_id(), created=datetime.now(UTC), **values)
        )

    def wake(self) -> None:
        self._woken.set()

    async def _append_all(
        self, entries: Iterable[tuple[str, str, datetime, list[str | bytes]]]
    ) -> None:
        """Append each (topic, marker, event time, fields) entry to its topic's stream unless
        its marker is recorded (then record it), all in one script run within
        ``call_timeout``. Markers are kept ``dedupe_ttl`` past their minute's end."""
        min_id = min_kept_id(self._retention)
        ttl = str(max(int(self._dedupe_ttl.total_seconds()), 1) + MARKER_BUCKET)
        keys: list[str] = []
        arguments: list[str | bytes | int] = [ttl, min_id]
        for topic, marker, time, fields in entries:
            keys += [stream_key(topic), marker_bucket(time)]
            arguments += [marker, len(fields), *fields]
        async with asyncio.timeout(self._timeout):
            await self._append_many(keys=keys, args=arguments)

    async def backlog(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).select_from(outbox))
        return int(count or 0)

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until ``stopping``: right after local publishes, else every poll interval."""
        outages = 0
        while not stopping.is_set():
            self._woken.clear()
            try:
                moved = await self.relay_once()
            except Exception as exc:  # noqa: BLE001 - an outage must not end the relay
                outages += 1
                delay = min(self._outage_max, self._poll * 2 ** min(outages - 1, 20))
                _log.warning("events.relay_failed", error=repr(exc), retry_in=delay)
                await self._sleep(delay, stopping)
                continue
            outages = 0
            if moved < self._batch:
                await self._sleep(self._poll, stopping)

    async def _sleep(self, seconds: float, stopping: asyncio.Event) -> None:
        """Wait ``seconds``, less when woken or stopping."""
        waiters = [
            asyncio.ensure_future(self._woken.wait()),
            asyncio.ensure_future(stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def flush(self) -> None:
        """Relay everything pending now."""
        while await self.relay_once() == self._batch:
            pass

    async def relay_once(self) -> int:
        """Relay one batch; the number of rows moved."""
        async with transaction(self._sessions) as session:
            rows = (
                await session.execute(
                    select(outbox)
                    .order_by(outbox.c.created, outbox.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self._append_all(
                (row.topic, row.id, row.time, entry_fields(row.event_id, row, row.target_group))
                for row in rows
            )
            await session.execute(delete(outbox).where(outbox.c.id.in_([row.id for row in rows])))
        return len(rows)


def entry_fields(event_id: str, event: Any, target_group: str | None) -> list[str | bytes]:
    """A stream entry's fields: the envelope (an outbox row or an :class:`Envelope`: its
    ``type_name``, ``time``, ``payload`` and ``traceparent``), and the target group of a
    replay."""
    fields: list[str | bytes] = [
        "id", event_id,
        "type", event.type_name,
        "time", event.time.isoformat(),
        "payload", bytes(event.payload),
    ]  # fmt: skip
    if event.traceparent:
        fields += ["traceparent", event.traceparent]
    if target_group is not None:
        fields += ["group", target_group]
    return fields
