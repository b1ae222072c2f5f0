"""Steps that read or remove a customer's account: loading the hot balance (Current) and
deleting the customer (see :mod:`locking` for how steps run)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.counters import CounterStore
from m3o.services.balance import ledger
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.balance.hot_moves import HotMoves
from m3o.services.balance.ledger import Account

__all__ = ["LoadHot", "RemoveAccount"]


class LoadHot:
    """Returns the customer's hot balance, creating it from the ledger when missing (the
    account too, so the flush sees the customer's debits from now on)."""

    creates_accounts = True

    def __init__(self, *, customer_id: str, counters: CounterStore) -> None:
        self._customer_id = customer_id
        self._moves = HotMoves(counters)
        self._account = Account(customer_id)
        self._balance = 0

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self._account = accounts[self._customer_id]

    async def counters(self) -> None:
        self._balance = await self._moves.move(self._account, 0)

    async def write(self, session: AsyncSession) -> int:
        return self._balance

    async def undo(self) -> None:
        await self._moves.undo()

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
