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

    async def update(self, *, ignored: Collection[str], tracked: Collection[str]) -> None:
        """Record ``ignored`` customers as ignored and ``tracked`` ones as not, at once."""
        if not ignored and not tracked:
            return
        for attempt in (1, 2):
            try:
                async with transaction(self._sessions) as session:
                    gone = sorted({*ignored, *tracked})
                    for start in range(0, len(gone), _CHUNK):
                        await session.execute(
                            delete(ignored_customers).where(
                                ignored_customers.c.customer_id.in_(gone[start : start + _CHUNK])
                            )
                        )
                    if ignored:
                        now = self._clock()
                        await session.execute(
                            insert(ignored_customers),
                            [{"customer_id": c, "recorded": now} for c in sorted(set(ignored))],
                        )
                return
            except IntegrityError:
                # another process recorded one of them at the same moment: once more
                if attempt == 2:
                    raise

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
