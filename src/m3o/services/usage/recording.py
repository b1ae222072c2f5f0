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

Batching: the consumer runs :data:`CONCURRENCY` handlers at once. The first event of a
batch waits up to ``linger`` for others (or until :data:`CONCURRENCY` have arrived), then
one transaction writes them all; every handler of the batch returns (acknowledging its
event) only once that transaction has committed, and all of them fail (their events are
retried, one by one) if it fails.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta

from m3o.events.requests import TOPIC, Event, EventType
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError, Unavailable
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage import history
from m3o.services.usage.counters import (
    DAILY_TTL,
    GLOBAL_CUSTOMER,
    daily_key,
    endpoint_name,
)
from m3o.services.usage.history import FREE_PATH, CountKey

__all__ = ["CONCURRENCY", "DEFAULT_LINGER", "CountedCall", "RequestRecorder", "counted_call"]

_log = get_logger(__name__)

CONCURRENCY = 64
"""Request events handled at once, hence the largest batch."""
DEFAULT_LINGER = timedelta(milliseconds=20)
"""How long the first event of a batch waits for others."""


@dataclass(frozen=True, slots=True)
class CountedCall:
    """One metered call, as the history counts it."""

    event_id: str
    customer_id: str
    day: date
    api: str
    endpoint: str
    free: bool

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


def counted_call(delivery: Delivery) -> CountedCall | None:
    """The call a requests event reports; None for other events and unusable ones."""
    event = delivery.decode(Event)
    if event.type != EventType.EventTypeRequest:
        return None
    request = event.request
    customer_id = request.project_id or request.user_id
    if not customer_id or not request.api_name or not request.endpoint_name:
        _log.warning("usage.request_event_skipped", event_id=delivery.id, reason="incomplete")
        return None
    if customer_id == GLOBAL_CUSTOMER:
        _log.warning("usage.request_event_skipped", event_id=delivery.id, reason="reserved id")
        return None
    return CountedCall(
        event_id=delivery.id,
        customer_id=customer_id,
        day=delivery.time.astimezone(UTC).date(),
        api=request.api_name,
        endpoint=request.endpoint_name,
        free=request.price == "free",
    )


@dataclass(eq=False)
class _Batch:
    calls: list[CountedCall] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    taken: bool = False


class RequestRecorder:
    """Consumes ``requests`` in the group ``usage-requests``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        clock: Clock = utc_now,
        linger: timedelta = DEFAULT_LINGER,
        max_batch: int = CONCURRENCY,
    ) -> None:
        self._sessions = sessions
        self._counters = counters
        self._clock = clock
        self._linger = linger.total_seconds()
        self._max_batch = max_batch
        self._open: _Batch | None = None

    def consumer(self) -> Consumer:
        return Consumer(TOPIC, self.handle, concurrency=CONCURRENCY)

    async def handle(self, delivery: Delivery) -> None:
        call = counted_call(delivery)
        if call is not None:
            await self._submit(call)

    async def flush(self) -> int:
        """Write the open batch now; returns how many of its events were newly counted."""
        batch = self._open
        if batch is None:
            return 0
        return await self._write(batch)

    async def record(self, calls: Sequence[CountedCall]) -> int:
        """Count ``calls`` in one transaction, skipping those counted before; returns how
        many were newly counted."""
        if not calls:
            return 0
        async with transaction(self._sessions) as session:
            claimed = await history.claim_events(
                session, (c.event_id for c in calls), self._clock()
            )
            fresh: dict[str, CountedCall] = {}
            for call in calls:
                if call.event_id in claimed:
                    fresh.setdefault(call.event_id, call)
            counts = Counter(key for call in fresh.values() for key in call.paths())
            await history.add_counts(session, counts)
        await self._count_live(list(fresh.values()))
        return len(fresh)

    async def _submit(self, call: CountedCall) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = self._open
        leader = batch is None
        if batch is None:
            batch = self._open = _Batch()
        batch.calls.append(call)
        batch.futures.append(future)
        if len(batch.calls) >= self._max_batch:
            batch.full.set()
            self._open = None  # the next event starts a new batch
        if leader:
            await self._lead(batch)
        await future

    async def _lead(self, batch: _Batch) -> None:
        """Wait for the batch to fill (at most ``linger``), then write it."""
        try:
            async with asyncio.timeout(self._linger):
                await batch.full.wait()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._abandon(batch)
            raise
        await self._write(batch)

    def _abandon(self, batch: _Batch) -> None:
        """The leader was cancelled (shutdown): the batch's events fail, to be retried."""
        if batch.taken:
            return
        batch.taken = True
        if self._open is batch:
            self._open = None
        self._fail(batch, Unavailable("usage", "Request recorder stopped"))

    @staticmethod
    def _fail(batch: _Batch, error: BaseException) -> None:
        for future in batch.futures:
            if not future.done():
                future.set_exception(error)

    async def _write(self, batch: _Batch) -> int:
        if batch.taken:
            return 0
        batch.taken = True
        batch.full.set()  # a leader still waiting wakes up
        if self._open is batch:
            self._open = None
        try:
            counted = await self.record(batch.calls)
        except asyncio.CancelledError:
            self._fail(batch, Unavailable("usage", "Request recorder stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 - every event of the batch fails with it
            _log.warning(
                "usage.history_write_failed",
                events=len(batch.calls),
                error=type(exc).__name__,
                detail=str(exc).splitlines()[0] if str(exc) else "",
            )
            self._fail(batch, exc)
            return 0
        for future in batch.futures:
            if not future.done():
                future.set_result(None)
        return counted

    async def _count_live(self, calls: Sequence[CountedCall]) -> None:
        """Raise the live daily counters of newly counted calls (a cache: a failure is
        logged, the history has the truth)."""
        oldest = self._clock().astimezone(UTC).date() - timedelta(days=1)
        live = Counter(
            daily_key(key.customer_id, key.path, key.day)
            for call in calls
            if call.day >= oldest
            for key in call.paths()
            if key.path != FREE_PATH
        )
        if not live:
            return
        try:
            await self._counters.incr_many(live, ttl=DAILY_TTL)
        except M3OError as exc:
            _log.warning("usage.daily_counter_failed", error_id=exc.id, detail=exc.detail)
