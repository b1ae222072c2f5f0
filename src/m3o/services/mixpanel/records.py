"""Reads and writes ``mixpanel_ignored_customers``."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from m3o.runtime.store import SessionFactory, transaction
from m3o.services.mixpanel.tables import ignored_customers

__all__ = ["IgnoredCustomers"]

_CHUNK = 500
"""Ids per ``IN`` list (well below every database's limit on bound parameters)."""


class IgnoredCustomers:
    """The customers whose events are not forwarded."""

    def __init__(self, *, sessions: SessionFactory, clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def remember(self, customer_id: str, *, ignored: bool) -> None:
        """Record whether ``customer_id`` is ignored (its email on the list or no longer)."""
        try:
            async with transaction(self._sessions) as session:
                await session.execute(
                    delete(ignored_customers).where(ignored_customers.c.customer_id == customer_id)
                )
                if ignored:
                    await session.execute(
                        insert(ignored_customers).values(
                            customer_id=customer_id, recorded=self._clock()
                        )
                    )
        except IntegrityError:
            if not ignored:
                raise
            # A concurrent event of the same customer recorded it first: it is ignored.

    async def among(self, ids: Collection[str]) -> set[str]:
        """Those of ``ids`` that are ignored customers."""
        wanted = sorted({i for i in ids if i})
        found: set[str] = set()
        async with self._sessions() as session:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = await session.execute(
                    select(ignored_customers.c.customer_id).where(
                        ignored_customers.c.customer_id.in_(chunk)
                    )
                )
                found.update(rows.scalars())
        return found
