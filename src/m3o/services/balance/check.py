"""``m3o balance check``: recompute every balance and report where anything disagrees.

For each customer with an account or a ledger entry, holding the customer (as every
balance operation does, so none is half done while it is read):

- the ledger's sum must equal the stored balance;
- the hot balance, where loaded, must equal the ledger's sum less the request debits not
  recorded yet (``debited - recorded``). The hot balance and ``debited`` are read in one
  round trip, so a call the gateway admits meanwhile moves both or neither.

There must be no difference. Debits of a customer the service has no account for cannot be
seen here (the gateway only charges customers whose hot balance the service loaded, which
creates the account).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory
from m3o.services.balance import ledger
from m3o.services.balance.hot import debited_key, expected_hot, hot_key
from m3o.services.balance.ledger import Account
from m3o.services.balance.locking import Runner

__all__ = ["BalanceDifference", "check_balances"]

PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class BalanceDifference:
    """One customer whose balances disagree."""

    customer_id: str
    ledger: int
    """The sum of the ledger: the truth."""
    stored: int | None
    """The account's balance; None when there is no account."""
    pending: int
    """Request debits not recorded yet (``debited - recorded``)."""
    hot: int | None
    """The hot balance; None when it is not loaded."""

    @property
    def expected_hot(self) -> int:
        return self.ledger - self.pending


class _CheckCustomer:
    creates_accounts = False

    def __init__(self, customer_id: str, counters: CounterStore) -> None:
        self._customer_id = customer_id
        self._counters = counters
        self._account: Account | None = None
        self._ledger = 0
        self._hot: int | None = None
        self._debited = 0

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self._account = accounts.get(self._customer_id)
        self._ledger = await ledger.ledger_sum(session, self._customer_id)

    async def counters(self) -> None:
        hot = hot_key(self._customer_id)
        loaded = await self._counters.incr_existing(hot, 0) is not None
        value, self._debited = await self._counters.get_many([hot, debited_key(self._customer_id)])
        self._hot = value if loaded else None

    async def write(self, session: AsyncSession) -> BalanceDifference | None:
        recorded = self._account.recorded if self._account is not None else 0
        stored = self._account.balance if self._account is not None else None
        hot_differs = self._hot is not None and self._hot != expected_hot(
            self._ledger, self._debited, recorded
        )
        if stored == self._ledger and not hot_differs:
            return None
        return BalanceDifference(
            customer_id=self._customer_id,
            ledger=self._ledger,
            stored=stored,
            pending=self._debited - recorded,
            hot=self._hot,
        )

    async def undo(self) -> None:
        """Nothing was moved."""

    async def finish(self) -> None:
        """Nothing to finish."""


async def check_balances(
    sessions: SessionFactory, counters: CounterStore, *, page_size: int = PAGE_SIZE
) -> list[BalanceDifference]:
    """Every customer whose stored or hot balance disagrees with the ledger, by id."""
    runner = Runner(sessions)
    differences: list[BalanceDifference] = []
    after = ""
    while True:
        async with sessions() as session:
            customer_ids = await ledger.customers_after(session, after, page_size)
        if not customer_ids:
            return differences
        for customer_id in customer_ids:

            def step(customer_id: str = customer_id) -> _CheckCustomer:
                return _CheckCustomer(customer_id, counters)

            found = await runner.run([customer_id], step)
            if found is not None:
                differences.append(found)
        after = customer_ids[-1]
