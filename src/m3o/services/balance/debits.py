"""Writing the gateway's request debits to the ledger: the flush.

Admission raises a customer's cumulative ``debited`` counter by every charged price (and
release lowers it by a refund); the account's ``recorded`` says how much of it the ledger
holds. Flushing a customer, holding it (see :mod:`locking`): read ``recorded``, read
``debited``, then in one transaction write one adjustment ``-(debited - recorded)``
(reference ``API usage``, not visible) and set ``recorded = debited``. A flush that fails or
crashes anywhere before its commit wrote nothing and the next one does it all; one that
committed left nothing to do. Two flushes never write the same debits: they hold the
customer one after the other (across processes the row lock, or the account's version,
makes the second find ``recorded`` already moved). Refunds released after a flush make
the difference negative: the next flush writes it back as a credit.

The hot balance does not move (it already holds the debits), so the balance equals the
ledger after every flush.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.clock import Clock
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory
from m3o.services.balance import ledger
from m3o.services.balance.hot import debited_key
from m3o.services.balance.hot_moves import HotBalances
from m3o.services.balance.ledger import Account, Adjustment
from m3o.services.balance.locking import Lost, Runner
from m3o.services.balance.notices import publish_adjustment, publish_zero, zero_crossing

__all__ = ["API_USAGE", "FLUSHER", "FlushIncomplete", "Flusher", "RecordDebits"]

_log = get_logger(__name__)

API_USAGE = "API usage"
"""Reference of the adjustments holding request debits."""
FLUSHER = "balance"
"""``actioned_by`` of those adjustments and ``caller_id`` of their events."""
REQUEST_KIND = "request"
PAGE_SIZE = 500


class FlushIncomplete(Exception):
    """Some customers' debits could not be written; the next flush tries them again."""


class RecordDebits:
    """A :class:`~m3o.services.balance.locking.Step` writing one customer's unrecorded
    request debits; returns how much it wrote (0: nothing to do)."""

    creates_accounts = False

    def __init__(
        self,
        *,
        customer_id: str,
        counters: CounterStore,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self._customer_id = customer_id
        self._counters = counters
        self._publisher = publisher
        self._clock = clock
        self._hot = HotBalances(counters)
        self._account: Account | None = None
        self._debited = 0
        self._balance = 0

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self._account = accounts.get(self._customer_id)

    async def counters(self) -> None:
        if self._account is None:
            return
        self._debited = await self._hot.debited(self._account)
        self._balance = await self._hot.load(self._account)

    async def write(self, session: AsyncSession) -> int:
        before = self._account
        if before is None:
            return 0
        pending = self._debited - before.recorded
        at_zero, crossed = zero_crossing(before.at_zero, self._balance)
        if pending == 0 and at_zero == before.at_zero:
            return 0
        now = self._clock()
        if pending:
            await ledger.add_adjustment(
                session,
                Adjustment(
                    id=str(uuid.uuid4()),
                    customer_id=self._customer_id,
                    delta=-pending,
                    reference=API_USAGE,
                    visible=False,
                    actioned_by=FLUSHER,
                    created=now,
                ),
            )
            await publish_adjustment(
                self._publisher,
                session,
                customer_id=self._customer_id,
                delta=-pending,
                kind=REQUEST_KIND,
                reference=API_USAGE,
                caller_id=FLUSHER,
            )
        after = replace(
            before, balance=before.balance - pending, recorded=self._debited, at_zero=at_zero
        )
        if not await ledger.save_account(session, before, after, now):
            raise Lost(self._customer_id)
        if crossed:
            await publish_zero(
                self._publisher, session, customer_id=self._customer_id, caller_id=FLUSHER
            )
        return pending

    async def undo(self) -> None:
        await self._hot.undo()

    async def finish(self) -> None:
        """Nothing left once committed."""


class Flusher:
    """Flushes every customer whose ``debited`` differs from ``recorded`` (the cron)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        runner: Runner,
        counters: CounterStore,
        publisher: Publisher,
        clock: Clock,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._sessions = sessions
        self._runner = runner
        self._counters = counters
        self._publisher = publisher
        self._clock = clock
        self._page_size = page_size

    async def flush_customer(self, customer_id: str) -> int:
        """Write ``customer_id``'s unrecorded debits; how much was written."""

        def step() -> RecordDebits:
            return RecordDebits(
                customer_id=customer_id,
                counters=self._counters,
                publisher=self._publisher,
                clock=self._clock,
            )

        return await self._runner.run([customer_id], step)

    async def flush(self) -> int:
        """Flush every customer with unrecorded debits; returns how many were written.

        A customer that fails is logged and skipped; FlushIncomplete is raised at the end.
        """
        after = ""
        flushed = failed = 0
        while True:
            async with self._sessions() as session:
                page = await ledger.accounts_after(session, after, self._page_size)
            if not page:
                break
            debited = await self._counters.get_many([debited_key(a.customer_id) for a in page])
            for account, value in zip(page, debited, strict=True):
                if value == account.recorded:
                    continue
                try:
                    await self.flush_customer(account.customer_id)
                except (M3OError, SQLAlchemyError) as exc:
                    _log.error(
                        "balance.flush_failed", customer_id=account.customer_id, error=repr(exc)
                    )
                    failed += 1
                else:
                    flushed += 1
            after = page[-1].customer_id
        if failed:
            raise FlushIncomplete(f"{failed} customers' debits not written")
        if flushed:
            _log.info("balance.flushed", customers=flushed)
        return flushed
