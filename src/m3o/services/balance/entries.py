"""Writing credits and debits to the ledger: the step behind Increment, Decrement,
Transfer and the Stripe credits.

One try, holding every customer the entries name (see :mod:`locking`):

1. read: the accounts; an entry's idempotency key already in the ledger makes the whole
   operation a repeat (nothing is applied; the current balances are returned), unless that
   entry was another customer's or another amount: Conflict. A balance the entries would
   take past ``±MAX_BALANCE`` (:mod:`m3o.runtime.money`) refuses the operation
   (BadRequest), before anything is touched;
2. counters: each changed customer's hot balance is set aside (removed, see
   :mod:`hot_moves`), which tells what it will be after the write; a customer that must
   not be overdrawn and would go below zero refuses the operation (BadRequest
   ``insufficient balance``);
3. write: the entries, each account's new balance, and the events: BalanceIncrement or
   BalanceDecrement per entry, BalanceZero for a customer whose balance (the hot one,
   which the gateway admits against) goes from above zero to zero or below;
4. finish (committed): the hot balances are set aside once more, in case another process
   loaded one from the ledger as it was before the commit. Whoever needs one next loads
   it from the committed ledger (:meth:`Balances.apply` does at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.clock import Clock
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, Conflict
from m3o.runtime.events import Publisher
from m3o.runtime.money import check_balance
from m3o.services.balance import ledger
from m3o.services.balance.hot import hot_key
from m3o.services.balance.hot_moves import HotBalances
from m3o.services.balance.ledger import Account, Adjustment
from m3o.services.balance.locking import Lost
from m3o.services.balance.notices import publish_adjustment, publish_zero, zero_crossing

__all__ = ["Applied", "ApplyEntries", "Entry"]

INSUFFICIENT_BALANCE = "insufficient balance"
KEY_REUSED = "Idempotency key already used for another adjustment"


@dataclass(frozen=True, slots=True)
class Entry:
    """A credit (``delta`` > 0) or debit (< 0) to write."""

    customer_id: str
    delta: int
    reference: str
    kind: str
    """The ``type`` of its event: ``system``, ``topup``, ``transfer``."""
    visible: bool = False
    idempotency_key: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Applied:
    """Each customer's balance after the operation (the hot balance it will be loaded as);
    ``repeated`` when nothing was applied because an idempotency key was used before."""

    balances: dict[str, int]
    repeated: bool = False


class ApplyEntries:
    """A :class:`~m3o.services.balance.locking.Step` writing ``entries``."""

    creates_accounts = True

    def __init__(
        self,
        *,
        counters: CounterStore,
        publisher: Publisher,
        clock: Clock,
        endpoint: str,
        entries: Sequence[Entry],
        actioned_by: str,
        no_overdraft: frozenset[str] = frozenset(),
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._endpoint = endpoint
        self._entries = list(entries)
        self._actioned_by = actioned_by
        self._no_overdraft = no_overdraft
        self._counters = counters
        self._hot = HotBalances(counters)
        self._accounts: dict[str, Account] = {}
        self._repeated = False
        self._balances: dict[str, int] = {}

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self._accounts = accounts
        for entry in self._entries:
            if not entry.idempotency_key:
                continue
            done = await ledger.find_by_key(session, entry.idempotency_key)
            if done is None:
                continue
            if (done.customer_id, done.delta) != (entry.customer_id, entry.delta):
                raise Conflict(self._endpoint, KEY_REUSED)
            self._repeated = True
        for customer_id, delta in self._sums().items():
            check_balance(self._endpoint, self._accounts[customer_id].balance, delta)

    def _sums(self) -> dict[str, int]:
        sums = dict.fromkeys(self._accounts, 0)
        if not self._repeated:
            for entry in self._entries:
                sums[entry.customer_id] += entry.delta
        return sums

    def _changed(self) -> dict[str, int]:
        return {customer_id: delta for customer_id, delta in self._sums().items() if delta}

    async def counters(self) -> None:
        for customer_id, delta in self._changed().items():
            value = await self._hot.set_aside(self._accounts[customer_id], delta)
            if delta < 0 and value < 0 and customer_id in self._no_overdraft:
                raise BadRequest(self._endpoint, INSUFFICIENT_BALANCE)
            self._balances[customer_id] = value

    async def write(self, session: AsyncSession) -> Applied:
        if self._repeated:
            return Applied(dict(self._balances), repeated=True)
        now = self._clock()
        for entry in self._entries:
            await ledger.add_adjustment(session, self._adjustment(entry, now))
            await publish_adjustment(
                self._publisher,
                session,
                customer_id=entry.customer_id,
                delta=entry.delta,
                kind=entry.kind,
                reference=entry.reference,
                caller_id=self._actioned_by,
            )
        for customer_id, delta in self._changed().items():
            before = self._accounts[customer_id]
            at_zero, crossed = zero_crossing(before.at_zero, self._balances[customer_id])
            after = replace(before, balance=before.balance + delta, at_zero=at_zero)
            if not await ledger.save_account(session, before, after, now):
                raise Lost(customer_id)
            if crossed:
                await publish_zero(
                    self._publisher, session, customer_id=customer_id, caller_id=self._actioned_by
                )
        return Applied(dict(self._balances))

    async def undo(self) -> None:
        """Nothing moved: a hot balance set aside loads from the ledger as it stands."""

    async def finish(self) -> None:
        changed = self._changed()
        if changed:
            await self._counters.delete(*(hot_key(customer_id) for customer_id in changed))

    def _adjustment(self, entry: Entry, now: datetime) -> Adjustment:
        return Adjustment(
            id=str(uuid.uuid4()),
            customer_id=entry.customer_id,
            delta=entry.delta,
            reference=entry.reference,
            visible=entry.visible,
            actioned_by=self._actioned_by,
            created=now,
            meta=dict(entry.meta),
            idempotency_key=entry.idempotency_key,
        )
