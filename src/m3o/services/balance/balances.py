"""The service's core: every change of a balance goes through here, whoever asks (the
RPC handler, the consumers, the flush cron)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError, Unavailable
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory
from m3o.services.balance.account_steps import LoadHot, RemoveAccount
from m3o.services.balance.debits import Flusher
from m3o.services.balance.entries import Applied, ApplyEntries, Entry
from m3o.services.balance.hot import hot_key
from m3o.services.balance.locking import Runner

__all__ = ["Balances"]

_log = get_logger(__name__)


class Balances:
    """Applies credits and debits, reads and loads hot balances, removes customers."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        publisher: Publisher,
        clock: Clock = utc_now,
    ) -> None:
        self._counters = counters
        self._publisher = publisher
        self._clock = clock
        self.runner = Runner(sessions, clock=clock)
        self.flusher = Flusher(
            sessions=sessions,
            runner=self.runner,
            counters=counters,
            publisher=publisher,
            clock=clock,
        )

    async def apply(
        self,
        endpoint: str,
        entries: Sequence[Entry],
        *,
        actioned_by: str,
        no_overdraft: frozenset[str] = frozenset(),
    ) -> Applied:
        """Write ``entries`` at once (see :mod:`entries`); errors carry ``endpoint``.

        The hot balances the operation set aside are loaded again from the ledger at once,
        whether it succeeded or not (a load that fails is left to the next reader: the
        change stands, and the balances returned are those it computed).
        """

        def step() -> ApplyEntries:
            return ApplyEntries(
                counters=self._counters,
                publisher=self._publisher,
                clock=self._clock,
                endpoint=endpoint,
                entries=entries,
                actioned_by=actioned_by,
                no_overdraft=no_overdraft,
            )

        customer_ids = sorted({entry.customer_id for entry in entries})
        try:
            applied = await self.runner.run(customer_ids, step)
        except Exception:
            for customer_id in customer_ids:
                await self._reload(customer_id)
            raise
        balances = dict(applied.balances)
        for customer_id in customer_ids:
            loaded = await self._reload(customer_id)
            if loaded is not None:
                balances[customer_id] = loaded
            elif customer_id not in balances:
                # A repeat computes no balance: without one there is no answer (and the
                # caller's retry is safe, the key having been applied before).
                raise Unavailable(endpoint, "Balance busy, please try again")
        return Applied(balances, repeated=applied.repeated)

    async def _reload(self, customer_id: str) -> int | None:
        """The customer's hot balance, loaded; None (logged) when that fails."""
        try:
            return await self.current(customer_id)
        except (M3OError, SQLAlchemyError) as exc:
            _log.warning("balance.hot_reload_failed", customer_id=customer_id, error=repr(exc))
            return None

    async def current(self, customer_id: str) -> int:
        """The hot balance, loaded from the ledger when missing (0 for a new customer)."""
        value = await self._counters.incr_existing(hot_key(customer_id), 0)
        if value is not None:
            return value
        return await self.runner.run(
            [customer_id], lambda: LoadHot(customer_id=customer_id, counters=self._counters)
        )

    async def remove(self, customer_id: str) -> None:
        """Delete everything held about ``customer_id``; doing it again does nothing."""
        await self.runner.run(
            [customer_id], lambda: RemoveAccount(customer_id=customer_id, counters=self._counters)
        )
