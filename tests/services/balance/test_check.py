"""``m3o balance check``: no difference after any mix of operations; a tampered hot or
stored balance is reported."""

from __future__ import annotations

from sqlalchemy import update

from m3o.services.balance.check import BalanceDifference, check_balances
from m3o.services.balance.hot import hot_key
from m3o.services.balance.tables import accounts
from services.balance.support import ANN, BOB, World


async def _activity(world: World) -> None:
    await world.increment(ANN, 10_000, key="k1")
    await world.increment(BOB, 5_000)
    await world.transfer(ANN, BOB, 1_000)
    await world.decrement(BOB, 500)
    for n in range(5):
        assert (await world.admit(ANN, 100, n)).admitted
    await world.balances.flusher.flush()
    for n in range(3):
        assert (await world.admit(BOB, 7, n)).admitted  # not flushed yet


async def test_no_difference_after_credits_debits_transfers_and_calls(hot_world: World) -> None:
    await _activity(hot_world)

    assert await check_balances(hot_world.sessions, hot_world.counters) == []


async def test_a_wrong_hot_balance_is_reported(hot_world: World) -> None:
    await _activity(hot_world)
    await hot_world.counters.incr_existing(hot_key(BOB), 42)

    differences = await check_balances(hot_world.sessions, hot_world.counters, page_size=1)

    assert differences == [
        BalanceDifference(customer_id=BOB, ledger=5_500, stored=5_500, pending=21, hot=5_521)
    ]
    assert differences[0].expected_hot == 5_479


async def test_a_stored_balance_that_is_not_the_ledgers_sum_is_reported(
    hot_world: World,
) -> None:
    await _activity(hot_world)
    async with hot_world.sessions() as session, session.begin():
        await session.execute(
            update(accounts).where(accounts.c.customer_id == ANN).values(balance=1)
        )

    [difference] = await check_balances(hot_world.sessions, hot_world.counters)

    assert (difference.customer_id, difference.stored, difference.ledger) == (ANN, 1, 8_500)
    assert difference.hot == difference.expected_hot == 8_500


async def test_a_hot_balance_not_loaded_is_no_difference(hot_world: World) -> None:
    await _activity(hot_world)
    await hot_world.counters.delete(hot_key(ANN))

    assert await check_balances(hot_world.sessions, hot_world.counters) == []
    assert await hot_world.hot(ANN) is None  # the check loads nothing


async def test_a_ledger_without_account_is_reported(world: World) -> None:
    await world.increment(ANN, 300)
    async with world.sessions() as session, session.begin():
        await session.execute(accounts.delete())

    [difference] = await check_balances(world.sessions, world.counters)

    assert (difference.customer_id, difference.stored, difference.ledger) == (ANN, None, 300)
