"""Loading hot balances from the ledger, and setting them aside while the ledger changes.

A hot balance is derived: ``ledger - (debited - recorded)``. An operation that writes the
ledger does not move it; holding the customer, it removes it before the write ("sets it
aside") and it is loaded again from the committed ledger afterwards. While it is missing
the gateway's admission answers ``BALANCE_UNKNOWN`` and asks balance.Current, which waits
for the customer and loads it. So the hot balance never shows a change the ledger has not
committed, and a failure or a crash anywhere leaves it right or missing, never wrong.
"""

from __future__ import annotations

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Unavailable
from m3o.services.balance.hot import debited_key, expected_hot, hot_key
from m3o.services.balance.ledger import Account

__all__ = ["HotBalances"]

_LOAD_TRIES = 3


class HotBalances:
    """The hot-balance work of one try of an operation; it remembers what it loaded."""

    def __init__(self, counters: CounterStore) -> None:
        self._counters = counters
        self._loaded: list[str] = []

    async def load(self, account: Account) -> int:
        """The customer's hot balance, created from ``account`` when missing.

        ``account`` must be the customer's row as it stands: the caller holds the customer.
        """
        key = hot_key(account.customer_id)
        for _ in range(_LOAD_TRIES):
            value = await self._counters.incr_existing(key, 0)
            if value is not None:
                return value
            debited = await self.debited(account)
            loaded = expected_hot(account.balance, debited, account.recorded)
            if await self._counters.set_counter_if_absent(key, loaded):
                self._loaded.append(account.customer_id)
                return await self._settle(account)
        # Created and removed again between our tries, three times over.
        raise Unavailable("balance", "Balance busy, please try again")

    async def _settle(self, account: Account) -> int:
        """Give a just-created hot balance the refunds released while it was missing.

        A refund released between reading ``debited`` and creating the hot balance lowered
        ``debited`` and found no hot balance to raise. Both are read again in one round
        trip (calls admitted or released since moved both), and what the hot balance
        lacks is added.
        """
        key = hot_key(account.customer_id)
        value, debited = await self._counters.get_many([key, debited_key(account.customer_id)])
        missed = expected_hot(account.balance, debited, account.recorded) - value
        if not missed:
            return value
        moved = await self._counters.incr_existing(key, missed)
        return value + missed if moved is None else moved

    async def set_aside(self, account: Account, delta: int) -> int:
        """Remove the customer's hot balance before ``delta`` is written to the ledger, and
        return what it is once loaded again after that write.

        Nothing is admitted against a missing hot balance, so the value returned counts
        every call charged until now: exact for an overdraft check.
        """
        await self._counters.delete(hot_key(account.customer_id))
        debited = await self.debited(account)
        return expected_hot(account.balance + delta, debited, account.recorded)

    async def debited(self, account: Account) -> int:
        """The customer's cumulative request debits (``account`` as it stands: the caller
        holds the customer).

        The counter is never removed while the account stands, so missing means the
        counter store lost its data (a Redis restarted without persistence): it is created
        again holding ``recorded``, what the ledger already holds. Read as 0 instead, the
        ledger's recorded debits would come back as credit (``ledger - (0 - recorded)``)
        and the next flush would write them back as a refund. The debits not flushed when
        the store lost them are lost with it: those calls were answered free.
        """
        key = debited_key(account.customer_id)
        value = await self._counters.incr_existing(key, 0)
        if value is not None:
            return value
        await self._counters.set_counter_if_absent(key, account.recorded)
        return await self._counters.get(key)

    async def undo(self) -> None:
        """Remove the hot balances this try loaded (the account they came from may have
        moved on since it was read); they load again when next needed."""
        if self._loaded:
            await self._counters.delete(*(hot_key(c) for c in self._loaded))
            self._loaded.clear()
