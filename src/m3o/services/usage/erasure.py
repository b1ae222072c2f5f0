"""Removing a customer's usage: live counters, history and tier (DeleteCustomer and
customers/Deleted).

The counters to remove are found from the history (the counter store cannot be listed), so
they go first: if the history then fails to go, a retry finds them again. Monthly counters
of this month and the last (both may be live), daily counters of today and yesterday,
the unit usage reported for the endpoints called in those months.
Counts of calls still on their way (admitted, not yet in the history) may survive.
Repeating an erasure is harmless.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage import history
from m3o.services.usage.counters import TOTAL, TOTAL_FREE, daily_key, monthly_key, unit_key
from m3o.services.usage.history import FREE_PATH, is_endpoint_path
from m3o.services.usage.tiers import Tiers

__all__ = ["Erasure"]

_log = get_logger(__name__)


class Erasure:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        tiers: Tiers,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._counters = counters
        self._tiers = tiers
        self._clock = clock

    async def erase(self, customer_id: str) -> None:
        today = self._clock().astimezone(UTC).date()
        yesterday = today - timedelta(days=1)
        last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        async with self._sessions() as session:
            recent = await history.series(session, customer_id, since=last_month)
        keys = {
            monthly_key(customer_id, name, month)
            for month in (today, last_month)
            for name in (TOTAL, TOTAL_FREE)
        }
        for row in recent:
            if is_endpoint_path(row.path):
                keys.add(monthly_key(customer_id, row.path, row.day))
                keys.add(unit_key(customer_id, row.path))
            if row.day >= yesterday and row.path != FREE_PATH:
                keys.add(daily_key(customer_id, row.path, row.day))
        await self._counters.delete(*sorted(keys))
        async with transaction(self._sessions) as session:
            removed = await history.delete_customer(session, customer_id)
        await self._tiers.forget(customer_id)
        _log.info("usage.customer_erased", customer_id=customer_id, rows=removed)
