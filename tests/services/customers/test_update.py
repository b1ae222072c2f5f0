"""Update (admin) and UpdateName (the customer, admin): what changes and what is published."""

from __future__ import annotations

import pytest

from m3o.events.customers import EventType
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import ADMIN, SERVICE, World, call, customer_account


def update(customer: pb.Customer) -> pb.UpdateRequest:
    return pb.UpdateRequest(customer=customer)


async def test_update_writes_name_meta_and_status_and_publishes_the_new_values(
    world: World,
) -> None:
    ann = await world.create("ann@example.com")
    wanted = pb.Customer(id=ann.id, name="Ann", status="active", meta={"plan": "pro"})
    await world.handler.update(update(wanted), call("Update"))

    read = await world.read(ann.id)
    assert (read.name, read.status, dict(read.meta)) == ("Ann", "active", {"plan": "pro"})
    assert read.email == ann.email
    assert read.created == ann.created
    assert read.updated > ann.updated
    [event] = world.events()
    assert event.type == EventType.EventTypeUpdated
    assert event.customer.name == "Ann"
    assert event.customer.status == "active"
    assert dict(event.customer.meta) == {"plan": "pro"}
    assert event.customer.updated == read.updated
    assert event.caller_id == ADMIN.id
    world.assert_all_in_transaction()
    assert world.auth.delete.call_count == 0


async def test_update_keeps_what_the_request_leaves_empty(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    await world.handler.update(update(pb.Customer(id=ann.id, name="Ann")), call("Update"))
    read = await world.read(ann.id)
    assert read.status == "verified"
    assert dict(read.meta) == dict(ann.meta)


async def test_update_without_change_writes_nothing_and_publishes_nothing(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    before = await world.read(ann.id)
    same = pb.Customer(id=ann.id, status="verified", meta=dict(ann.meta), email="x@example.com")
    await world.handler.update(update(same), call("Update", SERVICE))
    assert await world.read(ann.id) == before
    assert world.events() == []


@pytest.mark.parametrize("status", ["banned", "gone", "VERIFIED"])
async def test_update_to_a_status_not_allowed_is_badstatus(world: World, status: str) -> None:
    ann = await world.create("ann@example.com")
    with pytest.raises(BadRequest) as caught:
        await world.handler.update(update(pb.Customer(id=ann.id, status=status)), call("Update"))
    assert caught.value.to_dict() == {
        "id": "customers.update.badstatus",
        "code": 400,
        "detail": "Invalid status",
        "status": "Bad Request",
    }
    assert world.events() == []


async def test_update_cannot_lift_a_ban(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    with pytest.raises(BadRequest) as caught:
        await world.handler.update(update(pb.Customer(id=ann.id, status="active")), call("Update"))
    assert caught.value.id == "customers.update"
    assert (await world.read(ann.id)).status == "banned"
    await world.handler.update(update(pb.Customer(id=ann.id, name="Ann")), call("Update"))
    assert (await world.read(ann.id)).name == "Ann"


async def test_update_to_deleted_ends_the_account_and_releases_the_email(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    await world.handler.update(update(pb.Customer(id=ann.id, status="deleted")), call("Update"))
    assert [r.id for r in world.auth.delete.calls] == [ann.id]
    with pytest.raises(NotFound):
        await world.read(ann.id)
    [event] = world.events()
    assert event.type == EventType.EventTypeUpdated
    assert event.customer.status == "deleted"
    again = await world.handler.create(pb.CreateRequest(email=ann.email), call("Create"))
    assert again.customer.id != ann.id


async def test_update_to_deleted_fails_cleanly_when_auth_fails(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.delete.raises(Unavailable("auth.delete", "Service auth is not available"))
    with pytest.raises(Unavailable):
        await world.handler.update(update(pb.Customer(id=ann.id, status="deleted")), call("Update"))
    assert (await world.read(ann.id)).status == "verified"
    assert world.events() == []


async def test_update_bad_requests(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.update(pb.UpdateRequest(), call("Update"))
    assert caught.value == BadRequest("customers.update", "Missing customer")
    with pytest.raises(BadRequest):
        await world.handler.update(update(pb.Customer(name="Ann")), call("Update"))
    with pytest.raises(BadRequest):
        await world.handler.update(update(pb.Customer(id="x", name="A" * 201)), call("Update"))
    with pytest.raises(NotFound):
        await world.handler.update(update(pb.Customer(id="nope", name="Ann")), call("Update"))
    deleted = await world.create("dee@example.com", "deleted")
    with pytest.raises(NotFound):
        await world.handler.update(update(pb.Customer(id=deleted.id, name="D")), call("Update"))
    assert world.auth.delete.call_count == 0


async def test_update_is_for_admins_and_services(world: World) -> None:
    ann = await world.create("ann@example.com")
    with pytest.raises(Forbidden):
        await world.handler.update(
            update(pb.Customer(id=ann.id, name="Ann")), call("Update", customer_account(ann))
        )
    with pytest.raises(Unauthorized):
        await world.handler.update(update(pb.Customer(id=ann.id, name="Ann")), call("Update", None))
    assert world.events() == []


async def test_customer_updates_its_own_name(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    request = pb.UpdateNameRequest(id=ann.id, name="  Ann Smith ")
    await world.handler.update_name(request, call("UpdateName", customer_account(ann)))
    assert (await world.read(ann.id)).name == "Ann Smith"
    [event] = world.events()
    assert event.type == EventType.EventTypeUpdated
    assert event.customer.name == "Ann Smith"
    assert event.customer.status == "verified"
    assert event.caller_id == ann.id
    world.assert_all_in_transaction()


async def test_update_name_to_the_same_name_publishes_nothing(world: World) -> None:
    ann = await world.create("ann@example.com")
    request = pb.UpdateNameRequest(id=ann.id, name="Ann")
    await world.handler.update_name(request, call("UpdateName"))
    await world.handler.update_name(request, call("UpdateName"))
    assert len(world.events()) == 1


async def test_update_name_errors(world: World) -> None:
    ann = await world.create("ann@example.com")
    bob = await world.create("bob@example.com")
    as_ann = call("UpdateName", customer_account(ann))
    for other in (bob.id, "nope"):
        with pytest.raises(Forbidden):
            await world.handler.update_name(pb.UpdateNameRequest(id=other, name="X"), as_ann)
    with pytest.raises(BadRequest):
        await world.handler.update_name(pb.UpdateNameRequest(name="X"), as_ann)
    with pytest.raises(BadRequest):
        await world.handler.update_name(pb.UpdateNameRequest(id=ann.id, name="A" * 201), as_ann)
    with pytest.raises(Unauthorized):
        await world.handler.update_name(
            pb.UpdateNameRequest(id=ann.id, name="X"), call("UpdateName", None)
        )
    with pytest.raises(NotFound):
        await world.handler.update_name(pb.UpdateNameRequest(id="nope", name="X"), call("Update"))
    assert (await world.read(bob.id)).name == ""
    assert world.events() == []
