"""Money bounds (m3o.runtime.money): a credit, debit or transfer is at most MAX_AMOUNT and a
balance stays within ±MAX_BALANCE. A refused amount changes nothing: not the ledger, not
the hot balance, no event; ``m3o balance check`` still finds no difference."""

from __future__ import annotations

import pytest
import structlog

from m3o.runtime.errors import BadRequest
from m3o.runtime.money import MAX_AMOUNT, MAX_BALANCE, MAX_PRICE
from m3o.services.balance.check import check_balances
from m3o.services.balance.consumers import ChargeNotCredited, PaymentCredits
from m3o.services.balance.entries import Entry
from m3o.services.balance.settings import BalanceSettings
from services.balance.support import ANN, BOB, World
from services.balance.test_payments import _charge

HUGE = 2**63 - 1
TOO_MUCH = f"must be at most {MAX_AMOUNT} ($10,000,000)"
ABOVE_MAXIMUM = "The balance would exceed the maximum balance of $1,000,000,000"
BELOW_MINIMUM = "The balance would go below the minimum balance of -$1,000,000,000"


async def _unchanged(world: World, customer_id: str, deltas: list[int]) -> None:
    """``customer_id``'s ledger is ``deltas``, the hot balance agrees, nothing published."""
    assert (await world.ledger(customer_id)).deltas == deltas
    assert await world.current(customer_id) == sum(deltas)
    assert world.events() == []
    assert await check_balances(world.sessions, world.counters) == []


async def _fill(world: World, customer_id: str, sign: int) -> None:
    """Take the customer's balance to +MAX_BALANCE (sign 1) or -MAX_BALANCE (-1), in
    entries of MAX_AMOUNT written in one operation."""
    entry = Entry(customer_id, sign * MAX_AMOUNT, "Setup", "system")
    await world.balances.apply("test", [entry] * (MAX_BALANCE // MAX_AMOUNT), actioned_by="t")
    world.forget()


@pytest.mark.parametrize("delta", [HUGE, MAX_AMOUNT + 1])
async def test_a_credit_above_the_maximum_amount_is_bad_request_and_changes_nothing(
    hot_world: World, delta: int
) -> None:
    await hot_world.increment(ANN, 10_000)
    hot_world.forget()

    with pytest.raises(BadRequest) as raised:
        await hot_world.increment(ANN, delta)

    assert raised.value == BadRequest("balance.increment", f"Delta {TOO_MUCH}")
    await _unchanged(hot_world, ANN, [10_000])


@pytest.mark.parametrize("delta", [HUGE, MAX_AMOUNT + 1])
async def test_a_debit_above_the_maximum_amount_is_bad_request_and_changes_nothing(
    hot_world: World, delta: int
) -> None:
    await hot_world.increment(ANN, 10_000)
    hot_world.forget()

    with pytest.raises(BadRequest) as raised:
        await hot_world.decrement(ANN, delta)

    assert raised.value == BadRequest("balance.decrement", f"Delta {TOO_MUCH}")
    await _unchanged(hot_world, ANN, [10_000])


async def test_a_transfer_above_the_maximum_amount_is_bad_request_and_changes_nothing(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 10_000)
    hot_world.forget()

    with pytest.raises(BadRequest) as raised:
        await hot_world.transfer(ANN, BOB, HUGE)

    assert raised.value == BadRequest("balance.transfer", f"Amount {TOO_MUCH}")
    await _unchanged(hot_world, ANN, [10_000])
    await _unchanged(hot_world, BOB, [])


async def test_the_maximum_amount_is_credited_and_debited_exactly(hot_world: World) -> None:
    assert await hot_world.increment(ANN, MAX_AMOUNT) == MAX_AMOUNT
    assert await hot_world.decrement(ANN, MAX_AMOUNT - 1) == 1
    assert (await hot_world.ledger(ANN)).deltas == [MAX_AMOUNT, -(MAX_AMOUNT - 1)]
    assert await check_balances(hot_world.sessions, hot_world.counters) == []


async def test_a_credit_past_the_maximum_balance_is_refused_before_anything_changes(
    hot_world: World,
) -> None:
    await _fill(hot_world, ANN, 1)

    with pytest.raises(BadRequest) as raised:
        await hot_world.increment(ANN, 1)

    assert raised.value == BadRequest("balance.increment", ABOVE_MAXIMUM)
    await _unchanged(hot_world, ANN, [MAX_AMOUNT] * (MAX_BALANCE // MAX_AMOUNT))
    # A full balance still pays for calls, exactly, and may be debited.
    decision = await hot_world.admit(ANN, MAX_PRICE)
    assert decision.admitted
    assert await hot_world.current(ANN) == MAX_BALANCE - MAX_PRICE
    assert await hot_world.decrement(ANN, 1) == MAX_BALANCE - MAX_PRICE - 1
    assert await check_balances(hot_world.sessions, hot_world.counters) == []


async def test_a_debit_past_the_minimum_balance_is_refused(hot_world: World) -> None:
    await _fill(hot_world, ANN, -1)

    with pytest.raises(BadRequest) as raised:
        await hot_world.decrement(ANN, 1)

    assert raised.value == BadRequest("balance.decrement", BELOW_MINIMUM)
    await _unchanged(hot_world, ANN, [-MAX_AMOUNT] * (MAX_BALANCE // MAX_AMOUNT))
    assert await hot_world.increment(ANN, 1) == -MAX_BALANCE + 1


async def test_a_transfer_to_a_full_balance_is_refused_and_moves_nothing(world: World) -> None:
    await _fill(world, BOB, 1)
    await world.increment(ANN, 500)
    world.forget()

    with pytest.raises(BadRequest) as raised:
        await world.transfer(ANN, BOB, 100)

    assert raised.value == BadRequest("balance.transfer", ABOVE_MAXIMUM)
    await _unchanged(world, ANN, [500])
    assert await world.current(BOB) == MAX_BALANCE


async def test_a_payment_above_the_maximum_amount_is_logged_and_not_credited(
    world: World,
) -> None:
    payments = PaymentCredits(
        balances=world.balances, settings=BalanceSettings(exchange_rates={"xts": HUGE // 10})
    )

    with structlog.testing.capture_logs() as logs, pytest.raises(ChargeNotCredited):
        await payments.handle(_charge(1000, currency="xts"))

    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["balance.charge_too_large"]
    await _unchanged(world, ANN, [])


async def test_a_payment_past_the_maximum_balance_is_logged_and_not_credited(
    world: World,
) -> None:
    await _fill(world, ANN, 1)
    payments = PaymentCredits(balances=world.balances, settings=BalanceSettings())

    with structlog.testing.capture_logs() as logs, pytest.raises(BadRequest):
        await payments.handle(_charge(1000))

    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["balance.charge_refused"]
    assert (await world.ledger(ANN)).total == MAX_BALANCE
    assert world.events() == []
