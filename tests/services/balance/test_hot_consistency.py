"""The hot balance changes with the ledger's commit or not at all: it never shows a credit
the ledger has not committed, and a write whose commit fails leaves it equal to the
ledger even when the counter store fails as well. A hot balance loaded while a refund is
released takes that refund."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import Verdict
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Publisher
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.balance.balances import Balances
from m3o.services.balance.check import check_balances
from m3o.services.balance.entries import Entry
from m3o.services.balance.hot import hot_key
from services.balance.support import ANN, BOB, World, make_world, paid_call


class FlakyCounters:
    """A counter store that can be switched off (every call Unavailable) and that runs a
    hook before creating a counter."""

    def __init__(self, inner: CounterStore) -> None:
        self.inner = inner
        self.down = False
        self.before_create: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise Unavailable("counters", "Counter store unavailable")
            if name == "set_counter_if_absent" and self.before_create is not None:
                hook, self.before_create = self.before_create, None
                await hook()
            return await method(*args, **kwargs)

        return call


@contextmanager
def failing_ledger_commit(engine: AsyncEngine, on_failure: Callable[[], None]) -> Iterator[None]:
    """The next commit of a transaction that wrote to the ledger fails (the write itself
    succeeded), after calling ``on_failure``."""
    sync = engine.sync_engine
    left = [1]

    def mark(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT") and "balance_adjustments" in statement:
            conn.info["ledger_written"] = True

    def commit(conn: Connection) -> None:
        if conn.info.pop("ledger_written", False) and left[0]:
            left[0] -= 1
            on_failure()
            raise OperationalError("COMMIT", None, Exception("disk I/O error"))

    def rollback(conn: Connection) -> None:
        conn.info.pop("ledger_written", None)

    event.listen(sync, "before_cursor_execute", mark)
    event.listen(sync, "commit", commit)
    event.listen(sync, "rollback", rollback)
    try:
        yield
    finally:
        event.remove(sync, "before_cursor_execute", mark)
        event.remove(sync, "commit", commit)
        event.remove(sync, "rollback", rollback)


def _flaky_world(sessions: SessionFactory, counters: CounterStore) -> tuple[World, FlakyCounters]:
    flaky = FlakyCounters(counters)
    return make_world(sessions, cast(CounterStore, flaky)), flaky


async def _agrees(world: World, customer_id: str, total: int) -> None:
    assert (await world.ledger(customer_id)).total == total
    assert await world.current(customer_id) == total
    assert await check_balances(world.sessions, world.counters) == []


async def test_a_failed_commit_leaves_the_hot_balance_as_the_ledger(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world = make_world(sessions, counters)
    await world.increment(ANN, 10_000)

    with failing_ledger_commit(sessions.kw["bind"], lambda: None), pytest.raises(OperationalError):
        await world.increment(ANN, 240)

    assert await world.hot(ANN) == 10_000
    await _agrees(world, ANN, 10_000)


async def test_a_failed_commit_with_the_counter_store_failing_too_leaves_no_difference(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world, flaky = _flaky_world(sessions, counters)
    await world.increment(ANN, 10_000)

    def outage() -> None:
        flaky.down = True

    with failing_ledger_commit(sessions.kw["bind"], outage), pytest.raises(OperationalError):
        await world.increment(ANN, 240)
    flaky.down = False

    await _agrees(world, ANN, 10_000)
    assert await world.increment(ANN, 240) == 10_240
    await _agrees(world, ANN, 10_240)


async def test_a_transfer_whose_commit_fails_leaves_both_hot_balances_as_the_ledger(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world, flaky = _flaky_world(sessions, counters)
    await world.increment(ANN, 300)
    await world.current(BOB)

    def outage() -> None:
        flaky.down = True

    with failing_ledger_commit(sessions.kw["bind"], outage), pytest.raises(OperationalError):
        await world.transfer(ANN, BOB, 100)
    flaky.down = False

    await _agrees(world, ANN, 300)
    await _agrees(world, BOB, 0)


class WatchingPublisher:
    """Publishes through ``inner``, first running ``watch`` (while the write is open)."""

    def __init__(self, inner: Publisher, watch: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._watch()
            return await method(*args, **kwargs)

        return call


async def test_the_gateway_never_admits_against_a_credit_not_committed(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    counters = RedisCounterStore(redis, prefix="test:")
    world = make_world(sessions, counters)
    await world.increment(ANN, 100)
    seen: list[Verdict] = []

    async def gateway_call() -> None:
        # A call costing more than the committed balance, while the credit is being written.
        seen.append((await counters.admit(paid_call(ANN, 150, len(seen)))).verdict)

    publisher = cast(Publisher, WatchingPublisher(FakePublisher(), gateway_call))
    balances = Balances(sessions=sessions, counters=counters, publisher=publisher)
    credit = Entry(ANN, 100, "Top up", "system")
    with failing_ledger_commit(sessions.kw["bind"], lambda: None), pytest.raises(OperationalError):
        await balances.apply("balance.increment", [credit], actioned_by="admin-1")

    assert seen
    assert Verdict.ADMITTED not in seen
    await _agrees(world, ANN, 100)


async def test_a_refund_released_while_the_hot_balance_loads_is_kept(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world, flaky = _flaky_world(sessions, counters)
    await world.increment(ANN, 1_000)
    call = paid_call(ANN, 100)
    admitted = await counters.admit(call)
    assert admitted.admitted
    await counters.delete(hot_key(ANN))

    async def refund() -> None:
        await counters.release(call, admitted)

    flaky.before_create = refund
    assert await world.current(ANN) == 1_000
    await _agrees(world, ANN, 1_000)
