"""Increment and Decrement: roles, validation, the ledger, idempotency keys, events."""

from __future__ import annotations

from typing import Any

import pytest

from m3o.events.customers import EventType
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.services.balance.proto import balance_pb2 as pb
from services.balance.support import ADMIN, ANN, BOB, SERVICE, World, call, customer


async def test_increment_credits_the_ledger_and_returns_the_new_balance(world: World) -> None:
    assert await world.increment(ANN, 500) == 500
    assert await world.increment(ANN, 250) == 750

    ledger = await world.ledger(ANN)
    assert ledger.deltas == [500, 250]
    assert ledger.balance == 750
    assert await world.current(ANN) == 750


async def test_increment_checks_the_customer_exists_with_customers_read(world: World) -> None:
    await world.increment(ANN, 500)

    [read] = world.customers.read.calls
    assert read.id == ANN


async def test_increment_of_an_unknown_customer_is_bad_request_and_writes_nothing(
    world: World,
) -> None:
    world.customers.read.raises(NotFound("customers.read.notfound", "Customer not found"))

    with pytest.raises(BadRequest) as raised:
        await world.increment(ANN, 500)

    assert raised.value == BadRequest("balance.increment", "Customer not found")
    assert (await world.ledger(ANN)).deltas == []
    assert world.events() == []


async def test_a_failing_customers_service_is_unavailable(world: World) -> None:
    world.customers.read.raises(Unavailable("customers.read", "down"))

    with pytest.raises(Unavailable) as raised:
        await world.increment(ANN, 500)

    assert raised.value == Unavailable("balance.increment", "Service unavailable")
    assert (await world.ledger(ANN)).deltas == []


async def test_increment_publishes_balance_increment_in_its_transaction(world: World) -> None:
    await world.increment(ANN, 500)

    [event] = world.events()
    assert event.type == EventType.EventTypeBalanceIncrement
    assert event.customer.id == ANN
    assert event.caller_id == ADMIN.id
    assert (event.balance_increment.amount, event.balance_increment.type) == (500, "system")
    assert event.balance_increment.reference == "Top up"
    assert all(p.in_transaction for p in world.publisher.published)


async def test_a_service_may_increment(world: World) -> None:
    assert await world.increment(ANN, 10_000, account=SERVICE) == 10_000
    [event] = world.events()
    assert event.caller_id == SERVICE.id


@pytest.mark.parametrize("method", ["increment", "decrement"])
async def test_customers_may_not_adjust_and_anonymous_callers_are_unauthorized(
    world: World, method: str
) -> None:
    request = (pb.IncrementRequest if method == "increment" else pb.DecrementRequest)(
        customer_id=ANN, delta=5, reference="Free money"
    )
    handle = getattr(world.handler, method)

    with pytest.raises(Forbidden):
        await handle(request, call(method.title(), customer(ANN)))
    with pytest.raises(Unauthorized):
        await handle(request, call(method.title(), None))
    assert (await world.ledger(ANN)).deltas == []


@pytest.mark.parametrize("method", ["increment", "decrement"])
@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"customer_id": "", "delta": 5, "reference": "x"}, "Missing customer ID"),
        ({"customer_id": "  ", "delta": 5, "reference": "x"}, "Missing customer ID"),
        ({"customer_id": ANN, "delta": 0, "reference": "x"}, "Delta must be greater than zero"),
        ({"customer_id": ANN, "delta": -5, "reference": "x"}, "Delta must be greater than zero"),
        ({"customer_id": ANN, "delta": 5, "reference": ""}, "Missing reference"),
        ({"customer_id": ANN, "delta": 5, "reference": "   "}, "Missing reference"),
        (
            {"customer_id": ANN, "delta": 5, "reference": "x" * 501},
            "Reference is longer than 500 characters",
        ),
        (
            {"customer_id": ANN, "delta": 5, "reference": "x", "idempotency_key": "k" * 256},
            "Idempotency key is longer than 255 characters",
        ),
    ],
)
async def test_bad_adjustments_are_bad_requests(
    world: World, method: str, fields: dict[str, Any], detail: str
) -> None:
    request = (pb.IncrementRequest if method == "increment" else pb.DecrementRequest)(**fields)

    with pytest.raises(BadRequest) as raised:
        await getattr(world.handler, method)(request, call(method.title()))

    assert raised.value == BadRequest(f"balance.{method}", detail)
    assert world.customers.read.call_count == 0
    assert world.events() == []


async def test_a_repeated_idempotency_key_applies_nothing_and_returns_the_balance(
    world: World,
) -> None:
    await world.increment(ANN, 100)
    assert await world.increment(ANN, 500, key="promo:ann") == 600
    world.forget()

    assert await world.increment(ANN, 500, key="promo:ann") == 600

    assert (await world.ledger(ANN)).deltas == [100, 500]
    assert world.events() == []


async def test_a_repeated_key_still_returns_the_balance_as_it_is_now(world: World) -> None:
    await world.increment(ANN, 500, key="k1")
    await world.decrement(ANN, 200)

    assert await world.increment(ANN, 500, key="k1") == 300


async def test_a_key_used_for_another_adjustment_is_a_conflict(world: World) -> None:
    await world.increment(ANN, 500, key="charge-1")

    for attempt in (
        world.increment(BOB, 500, key="charge-1"),
        world.increment(ANN, 501, key="charge-1"),
        world.decrement(ANN, 500, key="charge-1"),
    ):
        with pytest.raises(Conflict) as raised:
            await attempt
        assert raised.value.detail == "Idempotency key already used for another adjustment"
    assert (await world.ledger(ANN)).deltas == [500]
    assert (await world.ledger(BOB)).deltas == []


async def test_decrement_debits_and_publishes_a_positive_amount(world: World) -> None:
    await world.increment(ANN, 500)
    world.forget()

    assert await world.decrement(ANN, 200) == 300

    assert (await world.ledger(ANN)).deltas == [500, -200]
    [event] = world.events()
    assert event.type == EventType.EventTypeBalanceDecrement
    assert (event.balance_decrement.amount, event.balance_decrement.type) == (200, "system")
    assert event.balance_decrement.reference == "Correction"


async def test_decrement_may_take_the_balance_below_zero(world: World) -> None:
    await world.increment(ANN, 100)

    assert await world.decrement(ANN, 300) == -200
    assert (await world.ledger(ANN)).balance == -200


async def test_balance_zero_is_published_once_per_crossing(world: World) -> None:
    await world.increment(ANN, 300)
    world.forget()

    await world.decrement(ANN, 100)  # 200
    await world.decrement(ANN, 200)  # 0: crossed
    await world.decrement(ANN, 50)  # -50: still below
    await world.increment(ANN, 20)  # -30: still below
    assert world.event_types() == [
        "EventTypeBalanceDecrement",
        "EventTypeBalanceDecrement",
        "EventTypeBalanceZero",
        "EventTypeBalanceDecrement",
        "EventTypeBalanceIncrement",
    ]
    world.forget()

    await world.increment(ANN, 100)  # 70: above again
    await world.decrement(ANN, 70)  # 0: a new crossing

    assert world.event_types() == [
        "EventTypeBalanceIncrement",
        "EventTypeBalanceDecrement",
        "EventTypeBalanceZero",
    ]
    zero = world.events()[-1]
    assert zero.customer.id == ANN
    assert zero.caller_id == ADMIN.id


async def test_a_new_customer_at_zero_gets_no_balance_zero(world: World) -> None:
    await world.increment(ANN, 100)
    await world.decrement(ANN, 100)
    world.forget()
    await world.current(BOB)

    await world.decrement(BOB, 5)

    assert world.event_types() == ["EventTypeBalanceDecrement"]
