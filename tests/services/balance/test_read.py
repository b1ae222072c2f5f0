"""Current and ListAdjustments: who may read what, loading the hot balance, pages."""

from __future__ import annotations

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.services.balance.hot import hot_key
from m3o.services.balance.proto import balance_pb2 as pb
from services.balance.support import ADMIN, ANN, BOB, SERVICE, World, call, customer


async def test_current_of_an_unknown_customer_is_zero(world: World) -> None:
    assert await world.current("nobody") == 0


async def test_a_customer_reads_their_own_balance_by_id_or_empty(world: World) -> None:
    await world.increment(ANN, 700)

    for customer_id in (ANN, ""):
        response = await world.handler.current(
            pb.CurrentRequest(customer_id=customer_id), call("Current", customer(ANN))
        )
        assert response.current_balance == 700


async def test_a_customer_may_not_read_anothers_balance(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.handler.current(
            pb.CurrentRequest(customer_id=BOB), call("Current", customer(ANN))
        )


async def test_admins_and_services_read_anyones_balance(world: World) -> None:
    await world.increment(ANN, 700)

    for account in (ADMIN, SERVICE):
        response = await world.handler.current(
            pb.CurrentRequest(customer_id=ANN), call("Current", account)
        )
        assert response.current_balance == 700


async def test_current_without_an_account_is_unauthorized(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.handler.current(pb.CurrentRequest(customer_id=ANN), call("Current", None))


async def test_current_loads_a_missing_hot_balance_from_the_ledger(hot_world: World) -> None:
    await hot_world.increment(ANN, 900)
    await hot_world.counters.delete(hot_key(ANN))
    assert await hot_world.hot(ANN) is None

    assert await hot_world.current(ANN) == 900
    assert await hot_world.hot(ANN) == 900


async def test_current_loads_the_hot_balance_less_unrecorded_debits(hot_world: World) -> None:
    await hot_world.increment(ANN, 900)
    assert (await hot_world.admit(ANN, 100)).admitted
    await hot_world.counters.delete(hot_key(ANN))

    assert await hot_world.current(ANN) == 800


async def test_the_gateway_admits_after_current_loaded_the_hot_balance(hot_world: World) -> None:
    await hot_world.increment(ANN, 900)
    await hot_world.counters.delete(hot_key(ANN))
    assert (await hot_world.admit(ANN, 100)).verdict.name == "BALANCE_UNKNOWN"

    await hot_world.current(ANN)

    decision = await hot_world.admit(ANN, 100)
    assert decision.admitted
    assert await hot_world.current(ANN) == 800


async def test_credits_move_the_hot_balance_the_gateway_admits_against(hot_world: World) -> None:
    await hot_world.current(ANN)  # loaded at 0
    assert (await hot_world.admit(ANN, 100)).verdict.name == "INSUFFICIENT_CREDIT"

    await hot_world.increment(ANN, 150)

    assert (await hot_world.admit(ANN, 100)).admitted
    assert not (await hot_world.admit(ANN, 100)).admitted
    assert await hot_world.current(ANN) == 50


async def _adjustments(
    world: World, request: pb.ListAdjustmentsRequest, account: Account | None
) -> list[pb.Adjustment]:
    response = await world.handler.list_adjustments(request, call("ListAdjustments", account))
    return list(response.adjustments)


async def test_a_customer_lists_their_visible_adjustments_oldest_first(world: World) -> None:
    await world.increment(ANN, 500)  # visible
    await world.decrement(ANN, 100)  # not visible
    await world.increment(ANN, 300)
    await world.increment(BOB, 1)

    found = await _adjustments(world, pb.ListAdjustmentsRequest(), customer(ANN))

    assert [(a.delta, a.reference) for a in found] == [(500, "Top up"), (300, "Top up")]
    assert all(a.id for a in found)
    assert found[0].created < found[1].created


async def test_an_admin_lists_every_adjustment_of_anyone(world: World) -> None:
    await world.increment(ANN, 500)
    await world.decrement(ANN, 100)

    found = await _adjustments(world, pb.ListAdjustmentsRequest(customer_id=ANN), ADMIN)

    assert [a.delta for a in found] == [500, -100]


async def test_adjustments_come_in_pages(world: World) -> None:
    for delta in range(1, 8):
        await world.increment(ANN, delta)

    first = await _adjustments(world, pb.ListAdjustmentsRequest(customer_id=ANN, limit=3), ADMIN)
    rest = await _adjustments(
        world, pb.ListAdjustmentsRequest(customer_id=ANN, limit=3, offset=3), ADMIN
    )
    last = await _adjustments(
        world, pb.ListAdjustmentsRequest(customer_id=ANN, limit=3, offset=6), ADMIN
    )

    assert [a.delta for a in first + rest + last] == [1, 2, 3, 4, 5, 6, 7]
    assert len(last) == 1


async def test_a_customer_may_not_list_anothers_adjustments(world: World) -> None:
    with pytest.raises(Forbidden):
        await _adjustments(world, pb.ListAdjustmentsRequest(customer_id=BOB), customer(ANN))
    with pytest.raises(Unauthorized):
        await _adjustments(world, pb.ListAdjustmentsRequest(customer_id=BOB), None)


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.ListAdjustmentsRequest(limit=-1), "limit must be between 0 and 1000"),
        (pb.ListAdjustmentsRequest(limit=1001), "limit must be between 0 and 1000"),
        (pb.ListAdjustmentsRequest(offset=-1), "offset must not be negative"),
    ],
)
async def test_bad_pages_are_bad_requests(
    world: World, request_: pb.ListAdjustmentsRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await _adjustments(world, request_, customer(ANN))
    assert raised.value == BadRequest("balance.listadjustments", detail)
