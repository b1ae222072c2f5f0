"""Keeping the live counters and the history in step: the sweep and the retention.

The sweep (Sweep, hourly and at start):

1. reports how many request events this process counted since the previous sweep (the
   consumer writes each batch as it is claimed: nothing waits in memory);
2. restores the counter store from the database: each tier mirror, and each of this
   month's counters (``total``, ``totalfree``, ``<api>$<Endpoint>``) that is missing while
   the history has counts for it (a counter store that lost its data would otherwise hand
   every customer a fresh monthly quota). A counter that exists is never touched: it counts
   calls still on their way to the history too.

The retention (daily) deletes the history of days older than ``usage.history_retention``
and forgets counted event ids after :data:`RECORDED_RETENTION`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage import history
from m3o.services.usage.counters import (
    GLOBAL_CUSTOMER,
    MONTHLY_TTL,
    TOTAL,
    TOTAL_FREE,
    monthly_key,
)
from m3o.services.usage.history import FREE_PATH, is_api_path, is_endpoint_path
from m3o.services.usage.recording import RequestRecorder
from m3o.services.usage.tiers import Tiers

__all__ = ["RECORDED_RETENTION", "Maintenance", "SweepResult"]

_log = get_logger(__name__)

RECORDED_RETENTION = timedelta(days=14)
"""How long a counted event's id is remembered. Redeliveries come within minutes (retries
back off to at most 5 minutes); an event replayed from the dead letters later than this
would be counted again."""
_READ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SweepResult:
    persisted: int
    """Request events written to the history."""
    restored: int
    """Counters and tier mirrors put back in the counter store."""


class Maintenance:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        recorder: RequestRecorder,
        tiers: Tiers,
        history_retention: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._counters = counters
        self._recorder = recorder
        self._tiers = tiers
        self._history_retention = history_retention
        self._clock = clock

    async def sweep(self) -> SweepResult:
        persisted = self._recorder.take_counted()
        restored = await self._tiers.restore() + await self._restore_monthly()
        _log.info("usage.swept", persisted=persisted, restored=restored)
        return SweepResult(persisted, restored)

    async def run_sweep(self) -> None:
        """:meth:`sweep` for the cron."""
        await self.sweep()

    async def purge(self) -> None:
        """Apply the retention."""
        now = self._clock()
        oldest_day = now.astimezone(UTC).date() - timedelta(days=self._history_retention.days)
        async with transaction(self._sessions) as session:
            days = await history.purge_history(session, oldest_day)
            ids = await history.purge_recorded_events(session, now - RECORDED_RETENTION)
        _log.info("usage.retention_applied", history_rows=days, event_ids=ids)

    async def _restore_monthly(self) -> int:
        now = self._clock()
        today = now.astimezone(UTC).date()
        async with self._sessions() as session:
            rows = await history.month_totals(session, today.replace(day=1), today)
        persisted: dict[str, int] = defaultdict(int)
        for row in rows:
            if row.customer_id == GLOBAL_CUSTOMER:
                continue
            if is_api_path(row.path):
                persisted[monthly_key(row.customer_id, TOTAL, now)] += row.requests
            elif row.path == FREE_PATH:
                persisted[monthly_key(row.customer_id, TOTAL_FREE, now)] += row.requests
            elif is_endpoint_path(row.path):
                persisted[monthly_key(row.customer_id, row.path, now)] += row.requests
        keys = sorted(key for key, count in persisted.items() if count > 0)
        restored = 0
        for start in range(0, len(keys), _READ_CHUNK):
            chunk = keys[start : start + _READ_CHUNK]
            live = await self._counters.get_many(chunk)
            for key, value in zip(chunk, live, strict=True):
                if value == 0 and await self._counters.set_counter_if_absent(
                    key, persisted[key], ttl=MONTHLY_TTL
                ):
                    restored += 1
        return restored
