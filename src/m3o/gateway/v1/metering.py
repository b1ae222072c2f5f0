"""requests/Request events of metered calls, published in batches off the hot path.

A call only appends its event to a buffer; a background task publishes what has gathered
every ``interval`` (sooner once ``max_batch`` are waiting), together: one write of the
whole batch, in one database transaction (the outbox then relays them together). A call
with a hold is queued once its commit (in the background, after its answer) succeeded;
:meth:`flush` first waits for the commits under way, so it publishes every call answered
so far. A batch that fails stays in the buffer, whole, and is tried again; :meth:`stop`
publishes everything left, so a graceful stop loses nothing.

**No event is dropped.** Past ``max_buffered`` events in memory (the stream has been
unreachable, or slower than the calls, for a while), a second background task moves the
newest events, down to half the buffer, to durable storage
(:class:`~m3o.gateway.v1.ports.EventSpill`: the platform's outbox, whose relay delivers
them with their ids once the stream answers), ``spill_batch`` per write, and settles their
holds as if published. A call only appends and, past the bound, sets a flag: nothing is
written per call, and nothing at all while the buffer is under its bound. A spill that
fails leaves its events in memory and is tried again with backoff; :meth:`stop` spills
what it could not publish. The first spill since the storage was last seen empty, and the
first failed spill of a run of failures, are reported to operators (``alerts``).
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
from m3o.gateway.v1.ports import Alerts, EventSpill
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import Hold
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Envelope, EnvelopePublisher, Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction

__all__ = ["NAMESPACE", "PublisherSpill", "RequestLog"]

_log = get_logger(__name__)

NAMESPACE = "micro"
"""The namespace every caller is in (kept for M3O's event consumers)."""
DEFAULT_INTERVAL = timedelta(milliseconds=50)
DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_BUFFERED = 200_000
DEFAULT_SPILL_BATCH = 1_000
ALERT_CATEGORY = "events"
SPILLED = "request_events_spilled"
SPILL_FAILED = "request_events_spill_failed"
_STOP_ATTEMPTS = 5
_BACKLOG_EVERY = 5.0
"""Seconds between reads of the spill's backlog while spilled events wait there."""
_SPILL_RETRY_MAX = 5.0


class PublisherSpill:
    """An :class:`~m3o.gateway.v1.ports.EventSpill` through the request log's own
    publisher, for publishers that are durable storage themselves (the local profile's
    event log): nothing waits in it for a stream."""

    def __init__(self, publisher: Publisher, sessions: SessionFactory | None = None) -> None:
        self._publisher = publisher
        self._sessions = sessions

    async def spill(self, envelopes: Sequence[Envelope]) -> None:
        await _publish_in(self._publisher, self._sessions, envelopes)

    async def waiting(self, topic: str) -> int:
        return 0


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
        spill: EventSpill | None = None,
        spill_batch: int = DEFAULT_SPILL_BATCH,
        alerts: Alerts | None = None,
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
        self._flushing = asyncio.Lock()
        """One flush at a time: two would publish the same front of the buffer."""
        self._in_flight = 0
        """Events at the front of the buffer being published now (never spilled)."""
        self._spill = spill or PublisherSpill(publisher, sessions)
        self._spill_batch = spill_batch
        self._alerts = alerts
        self._spill_wake = asyncio.Event()
        self._spill_write = asyncio.Lock()
        """Held while a chunk is out of the buffer and not yet stored."""
        self._spiller: asyncio.Task[None] | None = None
        self._spilled = 0
        self._spill_failures = 0
        self._failing = False
        self._spill_backlog = 0
        self._watching = False
        """Spilled since the spill was last seen empty: its backlog is read meanwhile."""
        self._reports: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Events in memory, not yet published or spilled."""
        return len(self._buffer)

    @property
    def spilled(self) -> int:
        """Events this process has spilled to durable storage since it started."""
        return self._spilled

    @property
    def spill_failures(self) -> int:
        """Spill writes that failed (their events stayed in memory)."""
        return self._spill_failures

    @property
    def spill_backlog(self) -> int:
        """Request events waiting in the spill for their stream, when last read (read after
        each spill and every few seconds until it is empty)."""
        return self._spill_backlog

    def record(self, request: Request) -> None:
        """Queue the event of one metered call (never blocks, never fails)."""
        event = Event(type=EventType.EventTypeRequest, request=request)
        self.record_served(Envelope.wrap(TOPIC, event), None)

    def record_served(self, envelope: Envelope, hold: Hold | None) -> None:
        """Queue a call's event; its hold (committed with this very event) is settled once
        the event is published or spilled."""
        self._buffer.append((envelope, hold))
        size = len(self._buffer)
        if size >= self._max_batch:
            self._wake.set()
        if size > self._max_buffered:
            self._spill_wake.set()

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
        if self._spiller is None:
            self._spiller = asyncio.create_task(self._spilling(), name="v1-request-spill")

    async def stop(self) -> None:
        """Stop the background tasks, then publish what is left (a few tries), and spill
        what still could not be published."""
        for task in (self._task, self._spiller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._spiller = None
        for attempt in range(_STOP_ATTEMPTS):
            if not self._buffer:
                break
            if not await self.flush() and attempt + 1 < _STOP_ATTEMPTS:
                await asyncio.sleep(0.2 * 2**attempt)
        if self._buffer and await self.spill_over(0):
            await self._settle()
        if self._buffer:
            _log.error("v1.request_events_lost", count=len(self._buffer))
        if self._reports:
            await asyncio.wait(set(self._reports), timeout=_SPILL_RETRY_MAX)

    async def flush(self) -> bool:
        """Publish everything buffered now, batch after batch; False if a batch failed
        (it stays buffered). Commits under way are waited for first."""
        if self._committing:
            await asyncio.wait(set(self._committing))
        async with self._flushing:
            await self._settle()
            while True:
                while self._buffer:
                    try:
                        await self._publish_some()
                    except Exception as exc:  # noqa: BLE001 - whatever failed, it is retried
                        _log.warning(
                            "v1.request_events_unpublished",
                            pending=len(self._buffer),
                            error=str(exc),
                        )
                        return False
                if not self._spill_write.locked():
                    return True
                # A chunk being spilled: stored once this returns, or back in the buffer.
                async with self._spill_write:
                    pass

    async def _publish_some(self) -> None:
        """Publish up to ``max_batch`` events from the front of the buffer, all at once,
        removing them once they are recorded."""
        batch = [self._buffer[i] for i in range(min(self._max_batch, len(self._buffer)))]
        self._in_flight = len(batch)
        try:
            await self.publish([envelope for envelope, _ in batch])
        finally:
            self._in_flight = 0
        for _ in batch:
            self._buffer.popleft()
        self._unsettled += [hold for _, hold in batch if hold is not None]
        await self._settle()

    async def spill_over(self, keep: int) -> bool:
        """Move the newest events to the spill until at most ``keep`` (or the batch being
        published) are left in memory, ``spill_batch`` per write; False when a write failed
        (its events are back in the buffer)."""
        while True:
            async with self._spill_write:
                # Counted once the lock is held, with nothing awaited before the pops: the
                # batch being published is at the front, the chunk taken from the back.
                count = min(len(self._buffer) - max(keep, self._in_flight), self._spill_batch)
                if count <= 0:
                    return True
                chunk = [self._buffer.pop() for _ in range(count)]
                chunk.reverse()
                try:
                    await self._spill.spill([envelope for envelope, _ in chunk])
                except Exception as exc:  # noqa: BLE001 - whatever failed, nothing is dropped
                    self._buffer.extend(chunk)
                    self._spill_failed(repr(exc))
                    return False
                except BaseException:
                    self._buffer.extend(chunk)  # cancelled (stopping): stop spills it
                    raise
            self._spill_stored(chunk)

    def _spill_failed(self, error: str) -> None:
        self._spill_failures += 1
        _log.error("v1.request_events_unspilled", pending=len(self._buffer), error=error)
        if not self._failing:
            self._failing = True
            self._report(SPILL_FAILED, {"buffered": str(len(self._buffer))})

    def _spill_stored(self, chunk: list[tuple[Envelope, Hold | None]]) -> None:
        self._failing = False
        self._spilled += len(chunk)
        self._unsettled += [hold for _, hold in chunk if hold is not None]
        if not self._watching:
            self._watching = True
            _log.warning("v1.request_events_spilling", buffered=len(self._buffer))
            self._report(SPILLED, {"buffered": str(len(self._buffer) + len(chunk))})

    async def _spilling(self) -> None:
        """Keep the buffer under its bound; read the spill's backlog while it has one."""
        retry = 0.0
        while True:
            if retry:  # every call past the bound sets the flag: back off regardless
                await asyncio.sleep(retry)
            else:
                wait = _BACKLOG_EVERY if self._watching else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._spill_wake.wait()
            self._spill_wake.clear()
            if len(self._buffer) > self._max_buffered:
                spilled = await self.spill_over(self._max_buffered // 2)
                retry = 0.0 if spilled else min(retry * 2 or 0.05, _SPILL_RETRY_MAX)
                await self._settle()
            await self._read_backlog()

    async def _read_backlog(self) -> None:
        if not self._watching:
            return
        try:
            self._spill_backlog = await self._spill.waiting(TOPIC)
        except Exception as exc:  # noqa: BLE001 - the metric keeps its last value
            _log.warning("v1.spill_backlog_unknown", error=repr(exc))
            return
        if self._spill_backlog == 0:
            self._watching = False
            _log.info("v1.request_events_drained", spilled=self._spilled)

    def _report(self, action: str, metadata: dict[str, str]) -> None:
        """Tell operators in the background; a report that fails is logged."""
        if self._alerts is None:
            return
        alerts = self._alerts

        async def report() -> None:
            try:
                await alerts.report(ALERT_CATEGORY, action, "", {"topic": TOPIC, **metadata})
            except Exception as exc:  # noqa: BLE001 - an alert never stops metering
                _log.warning("v1.alert_failed", action=action, error=repr(exc))

        task = asyncio.get_running_loop().create_task(report())
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish ``envelopes`` now, keeping their ids where the publisher can."""
        await _publish_in(self._publisher, self._sessions, envelopes)

    async def _settle(self) -> None:
        """Remove the holds of published (or spilled) events (a failure leaves them for the next
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
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
            # arrives as the wait ends, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            published = await self.flush()
            backoff = self._interval if published else min(backoff * 2 or 0.05, 5.0)


async def _publish_in(
    publisher: Publisher, sessions: SessionFactory | None, envelopes: Sequence[Envelope]
) -> None:
    """Publish ``envelopes`` through ``publisher``, in one transaction of ``sessions`` if
    given, keeping their ids where the publisher can."""
    if sessions is None:
        await _publish(publisher, envelopes, None)
        return
    async with transaction(sessions) as session:
        await _publish(publisher, envelopes, session)


async def _publish(
    publisher: Publisher, envelopes: Sequence[Envelope], session: AsyncSession | None
) -> None:
    if isinstance(publisher, EnvelopePublisher):
        await publisher.publish_envelopes(envelopes, session=session)
        return
    events = [Event.FromString(envelope.payload) for envelope in envelopes]
    await publisher.publish_many(TOPIC, events, session=session)
