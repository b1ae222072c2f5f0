"""Customers' subscription tiers: kept in ``usage_tiers``, mirrored into the counter store.

The table is the truth; the gateway reads the mirror (:func:`~m3o.services.usage.counters.
tier_of`). A change is applied only if its event is not older than the one that set the
current tier, so events arriving out of order end on the latest tier. The mirror is written
after the change commits and rewritten by :meth:`Tiers.restore` (at start and on every
sweep), so a counter store that lost it is repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage.counters import DEFAULT_TIER, tier_key
from m3o.services.usage.tables import tiers

__all__ = ["Tiers"]


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(tiers)


class Tiers:
    def __init__(self, *, sessions: SessionFactory, counters: CounterStore) -> None:
        self._sessions = sessions
        self._counters = counters

    async def change(self, customer_ids: Sequence[str], tier: str, changed: datetime) -> None:
        """Set ``tier`` for ``customer_ids`` as of ``changed`` (unless a later change is
        recorded), then mirror each one's current tier."""
        ids = sorted(set(customer_ids))
        if not ids:
            return
        async with transaction(self._sessions) as session:
            for customer_id in ids:
                insert = _insert(session).values(
                    customer_id=customer_id, tier=tier or DEFAULT_TIER, changed=changed
                )
                await session.execute(
                    insert.on_conflict_do_update(
                        index_elements=[tiers.c.customer_id],
                        set_={"tier": insert.excluded.tier, "changed": insert.excluded.changed},
                        where=tiers.c.changed <= insert.excluded.changed,
                    )
                )
            current = await self._current(session, ids)
        for customer_id in ids:
            await self._counters.set_value(
                tier_key(customer_id), current.get(customer_id, DEFAULT_TIER)
            )

    async def tier(self, customer_id: str) -> str:
        """The customer's recorded tier (:data:`DEFAULT_TIER` when none)."""
        async with self._sessions() as session:
            current = await self._current(session, [customer_id])
        return current.get(customer_id, DEFAULT_TIER)

    async def forget(self, customer_id: str) -> None:
        """Remove the customer's tier (it reads :data:`DEFAULT_TIER` again)."""
        async with transaction(self._sessions) as session:
            await session.execute(delete(tiers).where(tiers.c.customer_id == customer_id))
        await self._counters.delete(tier_key(customer_id))

    async def restore(self) -> int:
        """Rewrite every mirror that differs from the table; returns how many did."""
        async with self._sessions() as session:
            rows = (await session.execute(select(tiers.c.customer_id, tiers.c.tier))).all()
        restored = 0
        for customer_id, tier in rows:
            key = tier_key(str(customer_id))
            if await self._counters.get_value(key) != tier:
                await self._counters.set_value(key, str(tier))
                restored += 1
        return restored

    @staticmethod
    async def _current(session: AsyncSession, ids: Sequence[str]) -> dict[str, str]:
        query = select(tiers.c.customer_id, tiers.c.tier).where(tiers.c.customer_id.in_(ids))
        return {str(row[0]): str(row[1]) for row in await session.execute(query)}
