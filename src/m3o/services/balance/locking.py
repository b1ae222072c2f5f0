"""Running a balance operation while it holds its customers: the one place that orders
database work and counter-store work.

An operation (a :class:`Step`) has three phases: ``read`` the locked accounts (and whatever
else it needs) from the database, ``counters`` (set the hot balances it changes aside, see
:mod:`hot_moves`), ``write`` the ledger; then, once committed, ``finish``. The counters are
touched while the customers are held, so a hot balance and the ledger behind it never drift
apart through two operations interleaving:

- PostgreSQL: one transaction. The account rows are locked (``SELECT .. FOR UPDATE``, in
  customer-id order, so two operations never wait on each other in a cycle); the counters
  phase runs inside it, before the write. This holds across processes.
- SQLite: the counter store lives in the same database file, and SQLite has one writer at
  a time, so a counter operation inside an open transaction would wait for that very
  transaction. The phases run one after the other instead: the read in one transaction,
  the counters, the write in a second transaction. The in-process lock holds the
  customers for the whole operation; across processes the write checks each account's
  version and starts the operation again when another process changed it meanwhile.

Both ways, every operation also takes an in-process lock per customer (in id order)
before any database work, so concurrent operations on one customer queue in memory rather
than each holding a database connection while they wait, and at most ``max_concurrent``
operations hold connections at once.

When anything fails after the counters phase (the write, the commit, a cancellation), the
step's ``undo`` runs. Steps that change the ledger never move a hot balance (they remove
it, and it is loaded again from the ledger), so a failure or a crash anywhere leaves no
hot balance off; steps that load one remove it again in ``undo``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.balance import ledger
from m3o.services.balance.ledger import Account

__all__ = ["ATTEMPTS", "KeyedLocks", "Lost", "Runner", "Step"]

_log = get_logger(__name__)

R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

ATTEMPTS = 10
"""Tries of one operation that keeps losing races (a taken idempotency key, an account
another process changed) before it gives up as Unavailable."""
RETRY_PAUSE = 0.005
"""Seconds before the second try; doubled for each later one (with jitter), at most
:data:`MAX_RETRY_PAUSE`."""
MAX_RETRY_PAUSE = 0.2


class Lost(Exception):
    """The write found an account changed since it was read: start again."""


class Step(Protocol[R_co]):
    """One try of an operation on the customers it names."""

    creates_accounts: bool
    """Create the account of a customer who has none (else it is left out of ``read``)."""

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None: ...

    async def counters(self) -> None:
        """Work on the counters; may raise to refuse the operation (``undo`` follows)."""
        ...

    async def write(self, session: AsyncSession) -> R_co:
        """Write the change; raise :class:`Lost` when an account moved on."""
        ...

    async def undo(self) -> None:
        """Undo what ``counters`` did."""
        ...

    async def finish(self) -> None:
        """Runs after the commit, the customers still held in this process."""
        ...


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Hold every key of ``keys`` (taken in sorted order)."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._one(key))
            yield

    @asynccontextmanager
    async def _one(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Runner:
    """Runs steps holding their customers (see the module's docstring)."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        max_concurrent: int = 8,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._locks = KeyedLocks()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._clock = clock
        self._sqlite: bool | None = None

    async def run(self, customer_ids: Sequence[str], make_step: Callable[[], Step[T]]) -> T:
        """Run a fresh step from ``make_step`` until one is not :class:`Lost`."""
        ids = sorted(set(customer_ids))
        async with self._locks.hold(ids), self._slots:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    return await self._once(ids, make_step())
                except (Lost, IntegrityError) as exc:
                    _log.info(
                        "balance.operation_raced",
                        attempt=attempt,
                        reason=type(exc).__name__,
                        error=str(exc).splitlines()[0] if str(exc) else "",
                    )
                if attempt < ATTEMPTS:
                    pause = min(RETRY_PAUSE * 2 ** (attempt - 1), MAX_RETRY_PAUSE)
                    await asyncio.sleep(random.uniform(pause / 2, pause))  # noqa: S311
        _log.error("balance.operation_gave_up", customers=ids, attempts=ATTEMPTS)
        raise Unavailable("balance", "Balance busy, please try again")

    async def _is_sqlite(self) -> bool:
        if self._sqlite is None:
            async with self._sessions() as session:
                self._sqlite = session.get_bind().dialect.name == "sqlite"
        return self._sqlite

    async def _once(self, ids: list[str], step: Step[T]) -> T:
        if await self._is_sqlite():
            return await self._in_phases(ids, step)
        return await self._in_one_transaction(ids, step)

    async def _in_one_transaction(self, ids: list[str], step: Step[T]) -> T:
        async with self._sessions() as session:
            try:
                async with session.begin():
                    found = await ledger.lock_accounts(
                        session, ids, create=step.creates_accounts, now=self._clock()
                    )
                    await step.read(session, found)
                    await step.counters()
                    result = await step.write(session)
            except BaseException:
                await _undo(step)
                raise
        await step.finish()
        return result

    async def _in_phases(self, ids: list[str], step: Step[T]) -> T:
        async with transaction(self._sessions) as session:
            found = await ledger.lock_accounts(
                session, ids, create=step.creates_accounts, now=self._clock()
            )
            await step.read(session, found)
        try:
            await step.counters()
            async with transaction(self._sessions) as session:
                result = await step.write(session)
        except BaseException:
            await _undo(step)
            raise
        await step.finish()
        return result


async def _undo(step: Step[object]) -> None:
    """Undo even when the operation is being cancelled; log a failure, keep the cause."""
    try:
        await asyncio.shield(step.undo())
    except Exception as exc:  # noqa: BLE001 - the original failure is what the caller sees
        _log.error("balance.undo_failed", error=repr(exc))
