"""The flush: request debits reach the ledger exactly once, whatever fails or runs at once,
and the balance equals the ledger after every flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Unavailable
from m3o.services.balance.check import check_balances
from m3o.services.balance.debits import Flusher, FlushIncomplete
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.balance.proto import balance_pb2 as pb
from services.balance.support import ANN, BOB, START, World, call, customer, make_world, paid_call
from support.services import TickingClock


async def _use(world: World, customer_id: str, *prices: int) -> None:
    for price in prices:
        assert (await world.admit(customer_id, price)).admitted


async def test_flush_writes_one_hidden_api_usage_adjustment_per_customer(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 10_000)
    await hot_world.increment(BOB, 10_000)
    await _use(hot_world, ANN, 100, 250, 50)
    await _use(hot_world, BOB, 7)
    hot_world.forget()

    assert await hot_world.balances.flusher.flush() == 2

    assert (await hot_world.ledger(ANN)).deltas == [10_000, -400]
    assert (await hot_world.ledger(BOB)).deltas == [10_000, -7]
    response = await hot_world.handler.list_adjustments(
        pb.ListAdjustmentsRequest(customer_id=ANN), call("ListAdjustments")
    )
    assert response.adjustments[-1].reference == "API usage"
    ann = await hot_world.handler.list_adjustments(
        pb.ListAdjustmentsRequest(), call("ListAdjustments", customer(ANN))
    )
    assert [a.delta for a in ann.adjustments] == [10_000]  # API usage is not visible
    decrements = [e for e in hot_world.events() if e.HasField("balance_decrement")]
    assert sorted((e.customer.id, e.balance_decrement.amount) for e in decrements) == [
        (ANN, 400),
        (BOB, 7),
    ]
    assert {e.balance_decrement.type for e in decrements} == {"request"}
    assert all(p.in_transaction for p in hot_world.publisher.published)


async def test_the_balance_equals_the_ledger_after_every_flush(hot_world: World) -> None:
    await hot_world.increment(ANN, 5_000)
    for round_ in range(3):
        await _use(hot_world, ANN, *[10 * (round_ + 1)] * 5)
        await hot_world.balances.flusher.flush()

        ledger = await hot_world.ledger(ANN)
        assert await hot_world.current(ANN) == ledger.total == ledger.balance

    assert (await hot_world.ledger(ANN)).deltas == [5_000, -50, -100, -150]


async def test_a_flush_with_nothing_new_writes_nothing(hot_world: World) -> None:
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100)
    await hot_world.balances.flusher.flush()
    hot_world.forget()

    assert await hot_world.balances.flusher.flush() == 0
    assert await hot_world.balances.flusher.flush_customer(ANN) == 0

    assert (await hot_world.ledger(ANN)).deltas == [5_000, -100]
    assert hot_world.events() == []


async def test_refunds_released_after_a_flush_come_back_as_a_credit(hot_world: World) -> None:
    await hot_world.increment(ANN, 5_000)
    request = paid_call(ANN, 300)
    decision = await hot_world.counters.admit(request)
    await hot_world.balances.flusher.flush()

    await hot_world.counters.release(request, decision)  # the upstream failed after all
    await hot_world.balances.flusher.flush()

    assert (await hot_world.ledger(ANN)).deltas == [5_000, -300, 300]
    assert await hot_world.current(ANN) == 5_000


async def test_flush_publishes_balance_zero_when_usage_took_the_balance_to_zero(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 300)
    await _use(hot_world, ANN, 100, 200)
    hot_world.forget()

    await hot_world.balances.flusher.flush()
    await _use(hot_world, ANN)  # nothing more
    await hot_world.increment(ANN, 1)
    await hot_world.decrement(ANN, 1)

    assert hot_world.event_types() == [
        "EventTypeBalanceDecrement",
        "EventTypeBalanceZero",
        "EventTypeBalanceIncrement",
        "EventTypeBalanceDecrement",
        "EventTypeBalanceZero",
    ]


class FailingCounters:
    """The counter store, except that reading ``debited`` (``get``, ``incr_existing``) fails
    while ``failing`` is set."""

    def __init__(self, inner: CounterStore) -> None:
        self.inner = inner
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> int:
        if self.failing and key.startswith("balance:debited:"):
            raise Unavailable("counters", "Counter store unavailable")
        return await self.inner.get(key)

    async def incr_existing(self, key: str, amount: int) -> int | None:
        if self.failing and key.startswith("balance:debited:"):
            raise Unavailable("counters", "Counter store unavailable")
        return await self.inner.incr_existing(key, amount)

    async def get_many(self, keys: Sequence[str]) -> list[int]:
        return await self.inner.get_many(keys)


async def test_a_flush_failing_before_its_write_writes_nothing_and_the_next_does_it_once(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100, 200)
    failing = FailingCounters(hot_world.counters)
    crashing = make_world(hot_world.sessions, failing)

    with pytest.raises(FlushIncomplete):
        await crashing.balances.flusher.flush()
    assert (await hot_world.ledger(ANN)).deltas == [5_000]

    failing.failing = False
    await crashing.balances.flusher.flush()
    await crashing.balances.flusher.flush()

    assert (await hot_world.ledger(ANN)).deltas == [5_000, -300]
    assert await hot_world.current(ANN) == 4_700


async def test_a_flush_failing_in_its_write_commits_nothing_and_the_next_does_it_once(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100, 200)
    crashing = make_world(hot_world.sessions, hot_world.counters)
    crashing.publisher.raises(RuntimeError("crash between the adjustment and recorded"))

    with pytest.raises(RuntimeError):
        await crashing.balances.flusher.flush_customer(ANN)
    ledger = await hot_world.ledger(ANN)
    assert (ledger.deltas, ledger.recorded) == ([5_000], 0)
    assert await hot_world.current(ANN) == 4_700

    await hot_world.balances.flusher.flush()
    await hot_world.balances.flusher.flush()

    ledger = await hot_world.ledger(ANN)
    assert (ledger.deltas, ledger.recorded) == ([5_000, -300], 300)
    assert await hot_world.current(ANN) == 4_700


class StallingCounters(FailingCounters):
    """Reads ``debited``, then stalls: the process is stopped there."""

    async def get(self, key: str) -> int:
        value = await self.inner.get(key)
        if key.startswith("balance:debited:"):
            await asyncio.sleep(10)
        return value

    async def incr_existing(self, key: str, amount: int) -> int | None:
        value = await self.inner.incr_existing(key, amount)
        if key.startswith("balance:debited:"):
            await asyncio.sleep(10)
        return value


async def test_a_flush_cancelled_part_way_writes_nothing_and_the_next_does_it_once(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100, 200)

    slow = make_world(hot_world.sessions, StallingCounters(hot_world.counters))
    task = asyncio.create_task(slow.balances.flusher.flush_customer(ANN))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (await hot_world.ledger(ANN)).deltas == [5_000]
    await hot_world.balances.flusher.flush()
    await hot_world.balances.flusher.flush()
    assert (await hot_world.ledger(ANN)).deltas == [5_000, -300]


async def test_concurrent_flushes_across_processes_write_the_debits_once(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 50_000)
    await hot_world.increment(BOB, 50_000)
    await _use(hot_world, ANN, *[10] * 20)
    await _use(hot_world, BOB, *[3] * 20)
    processes = [make_world(hot_world.sessions, hot_world.counters) for _ in range(4)]

    await asyncio.gather(*(w.balances.flusher.flush() for w in processes for _ in range(2)))

    assert (await hot_world.ledger(ANN)).deltas == [50_000, -200]
    assert (await hot_world.ledger(BOB)).deltas == [50_000, -60]


async def test_flushes_while_calls_are_admitted_lose_and_double_nothing(hot_world: World) -> None:
    await hot_world.increment(ANN, 1_000_000)
    other = make_world(hot_world.sessions, hot_world.counters)

    async def calls() -> None:
        for n in range(40):
            assert (await hot_world.counters.admit(paid_call(ANN, 25, n))).admitted
            await asyncio.sleep(0)

    async def flushes() -> None:
        for _ in range(8):
            await asyncio.gather(hot_world.balances.flusher.flush(), other.balances.flusher.flush())
            await asyncio.sleep(0.01)

    await asyncio.gather(calls(), flushes())
    await hot_world.balances.flusher.flush()

    ledger = await hot_world.ledger(ANN)
    assert ledger.total == ledger.balance == 1_000_000 - 40 * 25
    assert await hot_world.current(ANN) == ledger.total
    assert ledger.recorded == await hot_world.counters.get(debited_key(ANN)) == 1000


async def test_the_flush_cron_pages_through_every_account(hot_world: World) -> None:
    flusher = Flusher(
        sessions=hot_world.sessions,
        runner=hot_world.balances.runner,
        counters=hot_world.counters,
        publisher=hot_world.publisher,
        clock=TickingClock(START),
        page_size=2,
    )
    customers = [f"c{n}" for n in range(5)]
    for customer_id in customers:
        await hot_world.increment(customer_id, 1000)
        await _use(hot_world, customer_id, 10)

    assert await flusher.flush() == 5

    for customer_id in customers:
        assert (await hot_world.ledger(customer_id)).deltas == [1000, -10]


async def test_a_deleted_hot_balance_is_reloaded_by_the_flush(hot_world: World) -> None:
    await hot_world.increment(ANN, 1000)
    await _use(hot_world, ANN, 10)
    await hot_world.counters.delete(hot_key(ANN))

    await hot_world.balances.flusher.flush()

    assert await hot_world.hot(ANN) == 990
    assert (await hot_world.ledger(ANN)).deltas == [1000, -10]


async def test_a_counter_store_that_lost_its_data_gives_back_no_recorded_debit(
    hot_world: World,
) -> None:
    # A Redis restarted without persistence: hot balance and cumulative debits are gone.
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100, 200)
    await hot_world.balances.flusher.flush()
    await _use(hot_world, ANN, 50)  # not flushed: lost with the store, answered free
    await hot_world.counters.delete(hot_key(ANN), debited_key(ANN))
    hot_world.forget()

    assert await hot_world.current(ANN) == 4_700  # the ledger, no recorded debit back
    await hot_world.balances.flusher.flush()
    await _use(hot_world, ANN, 30)
    await hot_world.balances.flusher.flush()
    assert (await hot_world.ledger(ANN)).deltas == [5_000, -300, -30]
    assert await hot_world.current(ANN) == 4_670
    assert await check_balances(hot_world.sessions, hot_world.counters) == []


async def test_a_flush_after_the_store_lost_its_data_writes_no_refund(hot_world: World) -> None:
    await hot_world.increment(ANN, 5_000)
    await _use(hot_world, ANN, 100)
    await hot_world.balances.flusher.flush()
    await hot_world.counters.delete(hot_key(ANN), debited_key(ANN))
    hot_world.forget()

    await hot_world.balances.flusher.flush()  # before any load

    assert (await hot_world.ledger(ANN)).deltas == [5_000, -100]
    assert hot_world.events() == []
    assert await hot_world.current(ANN) == 4_900
