"""Counting metered calls: requests/Request events into the daily history, once each.

Each event is counted on the UTC day it was published, under its project: the paths
``<api>`` and ``<api>$<Endpoint>`` (and :data:`~m3o.services.usage.history.FREE_PATH` when
it was charged ``free``), and ``<api>`` and ``<api>$<Endpoint>`` again under the global
customer ``total``.

Exactly once: the event's id is claimed in ``usage_recorded_events`` in the same transaction
that adds its counts to the history, so a redelivered event (or the same event delivered
twice at once) adds nothing. The live daily counters are raised after that transaction
commits, for the newly counted events only, in one counter-store step for the whole batch:
they are a cache that may lag the history (if the counter store fails then), never count an
event twice.

Batching: the consumer is a batch consumer: the events claimed together (up to
:data:`MAX_BATCH`; a claim that found fewer waits ``linger`` for more) are counted in one
transaction and acknowledged together once it has committed. If it fails, every event of
the batch is retried (on its own schedule, so a retry may join another batch); an event
that cannot be read fails alone.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.requests import TOPIC, Event, EventType
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Delivery, read_each
from m3o.runtime.logging import get_logger
from m3o.runtime.service import BatchConsumer
from m3o.runtime.store import SessionFactory, in_one_transaction
from m3o.services.usage import history
from m3o.services.usage.counters import (
    DAILY_TTL,
    GLOBAL_CUSTOMER,
    daily_key,
    endpoint_name,
)
from m3o.services.usage.history import FREE_PATH, CountKey

__all__ = ["DEFAULT_LINGER", "MAX_BATCH", "CountedCall", "RequestRecorder", "counted_call"]

_log = get_logger(__name__)

_REQUEST = EventType.EventTypeRequest
"""Read once: each lookup on the enum's wrapper runs Python code."""

MAX_BATCH = 256
"""The most request events counted in one transaction. A batch costs about 3.6 ms of CPU
whatever its size (the claim, the transaction, the live counters, the acknowledgement) and
14 µs more per event: at 64 the consumer took a quarter of a core at 3,700 calls/s, 70 µs
an event, on the machine the gateway shares; at 256, 38 µs."""
DEFAULT_LINGER = timedelta(milliseconds=100)
"""How long a claim that found fewer than :data:`MAX_BATCH` events waits for more. Counts
are read by people (the usage pages and API), not by admission, so a tenth of a second
costs nothing, and it fills the batches: with 20 ms the consumer's batches held about 70
events at 3,300 calls/s and it took 21 % of a core on the machine the gateway shares
(platform profile); with 100 ms, 12 %."""


class CountedCall(NamedTuple):
    """One metered call, as the history counts it. A named tuple: one is made per event
    and consumer, and a tuple is made in a quarter of the time a frozen dataclass takes."""

    event_id: str
    customer_id: str
    day: date
    api: str
    endpoint: str
    free: bool

    def kind(self) -> _Kind:
        """What the call adds to: every call of the same kind adds to the same rows."""
        return (self.customer_id, self.day, self.api, self.endpoint, self.free)

    def paths(self) -> list[CountKey]:
        """The history rows this call adds one to."""
        endpoint = endpoint_name(self.api, self.endpoint)
        keys = [
            CountKey(self.customer_id, self.day, self.api),
            CountKey(self.customer_id, self.day, endpoint),
            CountKey(GLOBAL_CUSTOMER, self.day, self.api),
            CountKey(GLOBAL_CUSTOMER, self.day, endpoint),
        ]
        if self.free:
            keys.append(CountKey(self.customer_id, self.day, FREE_PATH))
        return keys


_Kind = tuple[str, date, str, str, bool]


def _fresh_counts(calls: Sequence[CountedCall], claimed: set[str]) -> tuple[int, Counter[CountKey]]:
    """How many of ``calls`` were newly claimed (each event once), and what they add.

    The calls of a batch are mostly alike (one key calling one endpoint), so they are
    counted by what they add to before their rows are made: a batch's rows are made once
    per kind of call, not once per call."""
    seen: set[str] = set()
    alike: Counter[_Kind] = Counter()
    first: dict[_Kind, CountedCall] = {}
    for call in calls:
        event_id = call.event_id
        if event_id in claimed and event_id not in seen:
            seen.add(event_id)
            kind = call.kind()
            alike[kind] += 1
            if kind not in first:
                first[kind] = call
    counts: Counter[CountKey] = Counter()
    for kind, times in alike.items():
        for key in first[kind].paths():
            counts[key] += times
    return len(seen), counts


def _record_on_driver(
    calls: Sequence[CountedCall], now: datetime, db: sqlite3.Connection
) -> tuple[int, Counter[CountKey]]:
    claimed = history.claim_events_on_driver(db, (c.event_id for c in calls), now)
    fresh, counts = _fresh_counts(calls, claimed)
    history.add_counts_on_driver(db, counts)
    return fresh, counts


async def _record_in_session(
    calls: Sequence[CountedCall], now: datetime, session: AsyncSession
) -> tuple[int, Counter[CountKey]]:
    claimed = await history.claim_events(session, (c.event_id for c in calls), now)
    fresh, counts = _fresh_counts(calls, claimed)
    await history.add_counts(session, counts)
    return fresh, counts


def counted_call(delivery: Delivery) -> CountedCall | None:
    """The call a requests event reports; None for other events and unusable ones."""
    event = delivery.decode(Event)
    if event.type != _REQUEST:
        return None
    request = event.request
    customer_id = request.project_id or request.user_id
    if not customer_id or not request.api_name or not request.endpoint_name:
        _log.warning("usage.request_event_skipped", event_id=delivery.id, reason="incomplete")
        return None
    if customer_id == GLOBAL_CUSTOMER:
        _log.warning("usage.request_event_skipped", event_id=delivery.id, reason="reserved id")
        return None
    published = delivery.time
    day = (published if published.tzinfo is UTC else published.astimezone(UTC)).date()
    return CountedCall(
        delivery.id,
        customer_id,
        day,
        request.api_name,
        request.endpoint_name,
        request.price == "free",
    )


class RequestRecorder:
    """Consumes ``requests`` in the group ``usage-requests``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        clock: Clock = utc_now,
        linger: timedelta = DEFAULT_LINGER,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessions = sessions
        self._counters = counters
        self._clock = clock
        self._linger = linger
        self._max_batch = max_batch
        self._counted = 0

    def consumer(self) -> BatchConsumer:
        return BatchConsumer(TOPIC, self.handle, max_batch=self._max_batch, linger=self._linger)

    async def handle(self, deliveries: Sequence[Delivery]) -> dict[str, Exception]:
        """Count a batch of request events; the ones that cannot be read are returned
        (failed, to be retried and in the end dead-lettered), the rest counted together."""
        read, unreadable = read_each(deliveries, counted_call)
        await self.record([call for _delivery, call in read if call is not None])
        return unreadable

    def take_counted(self) -> int:
        """How many events were newly counted since the previous call (the sweep's
        report)."""
        counted, self._counted = self._counted, 0
        return counted

    async def record(self, calls: Sequence[CountedCall]) -> int:
        """Count ``calls`` in one transaction, skipping those counted before; returns how
        many were newly counted."""
        if not calls:
            return 0
        now = self._clock()
        fresh, counts = await in_one_transaction(  # SQLite: on the driver (see history)
            self._sessions,
            functools.partial(_record_on_driver, calls, now),
            functools.partial(_record_in_session, calls, now),
        )
        self._counted += fresh
        await self._count_live(counts)
        return fresh

    async def _count_live(self, counts: Mapping[CountKey, int]) -> None:
        """Raise the live daily counters by the history rows just added (a cache: a
        failure is logged, the history has the truth)."""
        oldest = self._clock().astimezone(UTC).date() - timedelta(days=1)
        live = {
            daily_key(key.customer_id, key.path, key.day): count
            for key, count in counts.items()
            if key.day >= oldest and key.path != FREE_PATH
        }
        if not live:
            return
        try:
            await self._counters.incr_many(live, ttl=DAILY_TTL)
        except M3OError as exc:
            _log.warning("usage.daily_counter_failed", error_id=exc.id, detail=exc.detail)
