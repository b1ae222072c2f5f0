"""Steps that read or remove a customer's account: loading the hot balance (Current) and
deleting the customer (see :mod:`locking` for how steps run)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.counters import CounterStore
from m3o.services.balance import ledger
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.balance.hot_moves import HotBalances
from m3o.services.balance.ledger import Account
from m3o.services.balance.locking import Lost

__all__ = ["LoadHot", "RemoveAccount"]


class LoadHot:
    """Returns the customer's hot balance, creating it from the ledger when missing (the
    account too, so the flush sees the customer's debits from now on).

    On SQLite the account is read in one transaction and checked in another: a hot balance
    loaded from an account another process changed meanwhile is removed and the load
    starts again (on PostgreSQL the row stays locked, so the check always passes).
    """

    creates_accounts = True

    def __init__(self, *, customer_id: str, counters: CounterStore) -> None:
        self._customer_id = customer_id
        self._hot = HotBalances(counters)
        self._account = Account(customer_id)
        self._balance = 0

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self._account = accounts[self._customer_id]

    async def counters(self) -> None:
        self._balance = await self._hot.load(self._account)

    async def write(self, session: AsyncSession) -> int:
        now = await ledger.read_account(session, self._customer_id)
        if now is None or now.version != self._account.version:
            raise Lost(self._customer_id)
        return self._balance

    async def undo(self) -> None:
        await self._hot.undo()

    async def finish(self) -> None:
        """Nothing left once committed."""


class RemoveAccount:
    """Deletes the customer's hot balance, ledger and account, then their debits.

    In that order, so that a failure part way never leaves a hot balance that reloads
    wrong: while the ledger and ``recorded`` stand, so does ``debited``. A retry (the
    admin's, or the event's redelivery) finishes the work.
    """

    creates_accounts = False

    def __init__(self, *, customer_id: str, counters: CounterStore) -> None:
        self._customer_id = customer_id
        self._counters = counters

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        """Nothing to read: holding the customer is what this step needs."""

    async def counters(self) -> None:
        await self._counters.delete(hot_key(self._customer_id))

    async def write(self, session: AsyncSession) -> None:
        await ledger.remove_customer(session, self._customer_id)

    async def undo(self) -> None:
        """A deleted hot balance is reloaded from the ledger when next needed."""

    async def finish(self) -> None:
        await self._counters.delete(debited_key(self._customer_id))
