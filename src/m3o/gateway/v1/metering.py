"""requests/Request events of metered calls, published in batches off the hot path.

A call only appends its event to a buffer; a background task publishes what has gathered
every ``interval`` (sooner once ``max_batch`` are waiting), together: one write of the
whole batch, in one database transaction (the outbox then relays them together). A call
with a hold is queued once its commit (in the background, after its answer) succeeded;
:meth:`flush` first waits for the commits under way, so it publishes every call answered
so far. A batch
that fails stays in the buffer, whole, and is tried again; :meth:`stop` publishes
everything left, so a graceful stop loses nothing. Past ``max_buffered`` events (the
database has been down a long while) new ones are dropped, with an error in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.requests import TOPIC, Event, EventType, Request
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import Hold
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Envelope, EnvelopePublisher, Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction

__all__ = ["NAMESPACE", "RequestLog"]

_log = get_logger(__name__)

NAMESPACE = "micro"
"""The namespace every caller is in (kept for M3O's event consumers)."""
DEFAULT_INTERVAL = timedelta(milliseconds=50)
DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_BUFFERED = 200_000
_STOP_ATTEMPTS = 5


class RequestLog:
    def __init__(
        self,
        publisher: Publisher,
        sessions: SessionFactory | None = None,
        *,
        interval: timedelta = DEFAULT_INTERVAL,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        counters: CounterStore | None = None,
    ) -> None:
        self._publisher = publisher
        self._counters = counters
        self._unsettled: list[Hold] = []
        self._sessions = sessions
        self._interval = interval.total_seconds()
        self._max_batch = max_batch
        self._max_buffered = max_buffered
        self._buffer: deque[tuple[Envelope, Hold | None]] = deque()
        self._committing: set[asyncio.Future[bool]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def record(self, request: Request) -> None:
        """Queue the event of one metered call (never blocks, never fails)."""
        event = Event(type=EventType.EventTypeRequest, request=request)
        self.record_served(Envelope.wrap(TOPIC, event), None)

    def record_served(self, envelope: Envelope, hold: Hold | None) -> None:
        """Queue a call's event; its hold (committed with this very event) is settled once
        the event is published. Dropped events keep their hold: a later recovery
        publishes them."""
        if len(self._buffer) >= self._max_buffered:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                _log.error("v1.request_events_dropped", dropped=self._dropped)
            return
        self._buffer.append((envelope, hold))
        if len(self._buffer) >= self._max_batch:
            self._wake.set()

    def record_committed(
        self, commit: asyncio.Future[bool], envelope: Envelope, hold: Hold
    ) -> None:
        """Queue a call's event once ``commit`` (marking ``hold`` served with this very
        event) succeeds; nothing when it fails or finds the hold released (the call is
        released, not charged)."""
        self._committing.add(commit)
        commit.add_done_callback(functools.partial(self._committed, envelope, hold))

    def _committed(self, envelope: Envelope, hold: Hold, commit: asyncio.Future[bool]) -> None:
        self._committing.discard(commit)
        if not commit.cancelled() and commit.exception() is None and commit.result():
            self.record_served(envelope, hold)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="v1-request-events")

    async def stop(self) -> None:
        """Stop the background task, then publish what is left (a few tries)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for attempt in range(_STOP_ATTEMPTS):
            if not self._buffer:
                return
            if not await self.flush() and attempt + 1 < _STOP_ATTEMPTS:
                await asyncio.sleep(0.2 * 2**attempt)
        if self._buffer:
            _log.error("v1.request_events_lost", count=len(self._buffer))

    async def flush(self) -> bool:
        """Publish everything buffered now, batch after batch; False if a batch failed
        (it stays buffered). Commits under way are waited for first."""
        if self._committing:
            await asyncio.wait(set(self._committing))
        await self._settle()
        while self._buffer:
            try:
                await self._publish_some()
            except Exception as exc:  # noqa: BLE001 - whatever failed, the batch is retried
                _log.warning(
                    "v1.request_events_unpublished", pending=len(self._buffer), error=str(exc)
                )
                return False
        return True

    async def _publish_some(self) -> None:
        """Publish up to ``max_batch`` events from the front of the buffer, all at once,
        removing them once they are recorded."""
        batch = [self._buffer[i] for i in range(min(self._max_batch, len(self._buffer)))]
        await self.publish([envelope for envelope, _ in batch])
        for _ in batch:
            self._buffer.popleft()
        self._unsettled += [hold for _, hold in batch if hold is not None]
        await self._settle()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish ``envelopes`` now, keeping their ids where the publisher can."""
        publisher = self._publisher
        if self._sessions is None:
            await _publish(publisher, envelopes, None)
        else:
            async with transaction(self._sessions) as session:
                await _publish(publisher, envelopes, session)

    async def _settle(self) -> None:
        """Remove the holds of published events (a failure leaves them for the next
        flush; a crash, for recovery, which publishes the same event ids again)."""
        if not self._unsettled or self._counters is None:
            return
        holds, self._unsettled = self._unsettled, []
        try:
            await self._counters.settle_many(holds)
        except M3OError as exc:
            self._unsettled = holds + self._unsettled
            _log.warning("v1.holds_unsettled", count=len(self._unsettled), error=exc.detail)

    async def _run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            published = await self.flush()
            backoff = self._interval if published else min(backoff * 2 or 0.05, 5.0)


async def _publish(
    publisher: Publisher, envelopes: Sequence[Envelope], session: AsyncSession | None
) -> None:
    if isinstance(publisher, EnvelopePublisher):
        await publisher.publish_envelopes(envelopes, session=session)
        return
    events = [Event.FromString(envelope.payload) for envelope in envelopes]
    await publisher.publish_many(TOPIC, events, session=session)
