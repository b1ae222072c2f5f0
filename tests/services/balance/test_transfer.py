"""Transfer: validation, both adjustments or neither, never an overdraft, also concurrently
and across processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from m3o.events.customers import EventType
from m3o.runtime.errors import BadRequest, Forbidden, NotFound
from m3o.services.balance.proto import balance_pb2 as pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from services.balance.support import ANN, BOB, World, call, customer, make_world


async def test_transfer_moves_credit_and_publishes_a_decrement_and_an_increment(
    world: World,
) -> None:
    await world.increment(ANN, 1000)
    world.forget()

    await world.transfer(ANN, BOB, 400)

    assert (await world.ledger(ANN)).deltas == [1000, -400]
    assert (await world.ledger(BOB)).deltas == [400]
    assert (await world.current(ANN), await world.current(BOB)) == (600, 400)
    decrement, increment = world.events()
    assert decrement.type == EventType.EventTypeBalanceDecrement
    assert (decrement.customer.id, decrement.balance_decrement.amount) == (ANN, 400)
    assert decrement.balance_decrement.type == "transfer"
    assert increment.type == EventType.EventTypeBalanceIncrement
    assert (increment.customer.id, increment.balance_increment.amount) == (BOB, 400)
    assert all(p.in_transaction for p in world.publisher.published)
    assert sorted(r.id for r in world.customers.read.calls) == [ANN, BOB]


async def test_transferring_the_whole_balance_publishes_balance_zero(world: World) -> None:
    await world.increment(ANN, 1000)
    world.forget()

    await world.transfer(ANN, BOB, 1000)

    assert "EventTypeBalanceZero" in world.event_types()


async def test_an_insufficient_balance_refuses_the_transfer_and_changes_nothing(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 300)
    await hot_world.increment(BOB, 50)
    hot_world.forget()

    with pytest.raises(BadRequest) as raised:
        await hot_world.transfer(ANN, BOB, 301)

    assert raised.value == BadRequest("balance.transfer", "insufficient balance")
    assert (await hot_world.ledger(ANN)).deltas == [300]
    assert (await hot_world.ledger(BOB)).deltas == [50]
    assert (await hot_world.hot(ANN), await hot_world.hot(BOB)) == (300, 50)
    assert hot_world.events() == []


async def test_unrecorded_request_debits_count_against_a_transfer(hot_world: World) -> None:
    await hot_world.increment(ANN, 300)
    assert (await hot_world.admit(ANN, 100)).admitted

    with pytest.raises(BadRequest):
        await hot_world.transfer(ANN, BOB, 300)
    await hot_world.transfer(ANN, BOB, 200)

    assert await hot_world.current(ANN) == 0


async def test_a_failing_write_moves_the_hot_balances_back(hot_world: World) -> None:
    await hot_world.increment(ANN, 300)
    await hot_world.current(BOB)
    hot_world.publisher.raises(RuntimeError("outbox down"))

    with pytest.raises(RuntimeError):
        await hot_world.transfer(ANN, BOB, 100)

    assert (await hot_world.hot(ANN), await hot_world.hot(BOB)) == (300, 0)
    assert (await hot_world.ledger(ANN)).deltas == [300]
    assert (await hot_world.ledger(BOB)).deltas == []


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"to_id": BOB, "amount": 5}, "Missing from ID"),
        ({"from_id": ANN, "amount": 5}, "Missing to ID"),
        ({"from_id": ANN, "to_id": ANN, "amount": 5}, "Cannot transfer to the same customer"),
        ({"from_id": ANN, "to_id": BOB, "amount": 0}, "Amount must be greater than zero"),
        ({"from_id": ANN, "to_id": BOB, "amount": -5}, "Amount must be greater than zero"),
        (
            {"from_id": ANN, "to_id": BOB, "amount": 5, "reference": "r" * 501},
            "Reference is longer than 500 characters",
        ),
    ],
)
async def test_bad_transfers_are_bad_requests(
    world: World, fields: dict[str, Any], detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.handler.transfer(pb.TransferRequest(**fields), call("Transfer"))
    assert raised.value == BadRequest("balance.transfer", detail)


async def test_a_transfer_to_an_unknown_customer_is_bad_request(world: World) -> None:
    await world.increment(ANN, 1000)

    world.customers.read.returns_once(
        customers_pb.ReadResponse(),  # ANN exists
        NotFound("customers.read.notfound", "Customer not found"),
    )

    with pytest.raises(BadRequest) as raised:
        await world.transfer(ANN, BOB, 100)

    assert raised.value.detail == "Customer not found"
    assert (await world.ledger(ANN)).deltas == [1000]


async def test_customers_may_not_transfer(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.handler.transfer(
            pb.TransferRequest(from_id=ANN, to_id=BOB, amount=1), call("Transfer", customer(ANN))
        )


async def test_a_transfer_without_reference_gets_one(world: World) -> None:
    await world.increment(ANN, 10)

    await world.handler.transfer(pb.TransferRequest(from_id=ANN, to_id=BOB, amount=5), call("T"))

    response = await world.handler.list_adjustments(
        pb.ListAdjustmentsRequest(customer_id=BOB), call("ListAdjustments")
    )
    assert [a.reference for a in response.adjustments] == ["Transfer"]


async def _transfer_or_refused(world: World, from_id: str, to_id: str, amount: int) -> bool:
    try:
        await world.transfer(from_id, to_id, amount)
    except BadRequest:
        return False
    return True


async def test_concurrent_transfers_never_overdraw(hot_world: World) -> None:
    await hot_world.increment(ANN, 1000)

    done = await asyncio.gather(*(_transfer_or_refused(hot_world, ANN, BOB, 300) for _ in range(8)))

    assert done.count(True) == 3
    assert await hot_world.current(ANN) == 100
    assert await hot_world.current(BOB) == 900
    assert (await hot_world.ledger(ANN)).total == 100
    assert (await hot_world.ledger(BOB)).total == 900


async def test_concurrent_transfers_from_separate_processes_never_overdraw(
    hot_world: World,
) -> None:
    """Each world stands for a process: its own locks, the shared database and counters."""
    await hot_world.increment(ANN, 1000)
    others = [make_world(hot_world.sessions, hot_world.counters) for _ in range(4)]

    done = await asyncio.gather(
        *(_transfer_or_refused(w, ANN, BOB, 300) for w in [hot_world, *others] for _ in range(2))
    )

    assert done.count(True) == 3
    assert (await hot_world.ledger(ANN)).total == 100
    assert await hot_world.current(ANN) == 100
    assert await hot_world.current(BOB) == 900


async def test_opposite_concurrent_transfers_across_processes_complete(hot_world: World) -> None:
    await hot_world.increment(ANN, 1000)
    await hot_world.increment(BOB, 1000)
    other = make_world(hot_world.sessions, hot_world.counters)

    await asyncio.wait_for(
        asyncio.gather(
            *(hot_world.transfer(ANN, BOB, 10) for _ in range(5)),
            *(other.transfer(BOB, ANN, 20) for _ in range(5)),
        ),
        timeout=60,
    )

    assert await hot_world.current(ANN) == 1050
    assert await hot_world.current(BOB) == 950
    assert (await hot_world.ledger(ANN)).total == 1050
    assert (await hot_world.ledger(BOB)).total == 950
