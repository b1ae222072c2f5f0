"""DeleteCustomer (admin's erasure, services only): the record goes for good with its auth
account, a live customer is published as Deleted, and deleting again succeeds."""

from __future__ import annotations

import pytest

from m3o.events.customers import EventType
from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, M3OError, NotFound, Unauthorized
from m3o.services.customers import records
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import ADMIN, SERVICE, World, call, customer_account


async def erase(world: World, customer_id: str, account: Account | None = SERVICE) -> str:
    done = await world.handler.delete_customer(
        pb.DeleteCustomerRequest(customer_id=customer_id), call("DeleteCustomer", account)
    )
    return done.email


async def test_a_live_customer_goes_for_good_with_its_account_and_an_event(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    assert await erase(world, ann.id) == "ann@example.com"
    async with world.sessions() as session:
        assert await records.find(session, customer_id=ann.id) is None
    [deleted] = world.auth.delete.calls
    assert deleted.id == ann.id
    [event] = world.events()
    assert event.type == EventType.EventTypeDeleted
    assert (event.customer.id, event.customer.email) == (ann.id, "ann@example.com")
    world.assert_all_in_transaction()


async def test_a_deleted_customer_just_goes(world: World) -> None:
    ann = await world.create("ann@example.com", "deleted")
    assert await erase(world, ann.id) == "ann@example.com"
    async with world.sessions() as session:
        assert await records.find(session, customer_id=ann.id) is None
    assert world.events() == []


async def test_deleting_twice_succeeds_and_does_nothing_more(world: World) -> None:
    ann = await world.create("ann@example.com")
    await erase(world, ann.id)
    world.forget_calls()
    world.auth.delete.raises(NotFound("auth.delete", "Account not found"))
    assert await erase(world, ann.id) == ""
    assert world.events() == []


async def test_the_address_is_free_again_afterwards(world: World) -> None:
    ann = await world.create("ann@example.com")
    await erase(world, ann.id)
    again = await world.create("ann@example.com")
    assert again.id != ann.id


@pytest.mark.parametrize(
    ("role", "error"),
    [("customer", Forbidden), ("admin", Forbidden), ("anonymous", Unauthorized)],
)
async def test_only_services_may_delete_customers(
    world: World, role: str, error: type[M3OError]
) -> None:
    ann = await world.create("ann@example.com")
    bob = await world.create("bob@example.com")
    accounts = {"customer": customer_account(bob), "admin": ADMIN, "anonymous": None}
    with pytest.raises(error):
        await erase(world, ann.id, accounts[role])
    assert (await world.read(ann.id)).id == ann.id
    assert world.auth.delete.call_count == 0


async def test_a_customer_may_not_delete_itself_this_way(world: World) -> None:
    ann = await world.create("ann@example.com")
    with pytest.raises(Forbidden):
        await erase(world, ann.id, customer_account(ann))


@pytest.mark.parametrize("customer_id", ["", "   "])
async def test_a_missing_customer_id_is_bad_request(world: World, customer_id: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await erase(world, customer_id)
    assert raised.value.detail == "Missing customer ID"
