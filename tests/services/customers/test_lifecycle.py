"""The life cycle: MarkVerified, Delete, Ban and Unban, with their auth calls and events."""

from __future__ import annotations

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
from m3o.services.customers import records
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import ADMIN, SERVICE, World, call, customer_account

# -- MarkVerified -----------------------------------------------------------------------------


async def test_mark_verified_moves_unverified_to_verified(world: World) -> None:
    ann = await world.create("ann@example.com")
    await world.handler.mark_verified(pb.MarkVerifiedRequest(id=ann.id), call("MarkVerified"))
    read = await world.read(ann.id)
    assert read.status == "verified"
    assert read.updated > ann.updated
    [event] = world.events()
    assert event.type == EventType.EventTypeVerified
    assert event.customer.status == "verified"
    assert event.customer.updated == read.updated
    assert event.caller_id == ADMIN.id
    world.assert_all_in_transaction()
    assert world.auth.generate.call_count == 0


async def test_customer_marks_itself_verified_by_email(world: World) -> None:
    ann = await world.create("ann@example.com")
    await world.handler.mark_verified(
        pb.MarkVerifiedRequest(email="ANN@example.com"), call("MarkVerified", customer_account(ann))
    )
    assert (await world.read(ann.id)).status == "verified"
    assert world.events()[0].caller_id == ann.id


@pytest.mark.parametrize("status", ["verified", "active", "banned"])
async def test_mark_verified_never_lifts_a_ban_nor_demotes_active(
    world: World, status: str
) -> None:
    ann = await world.create("ann@example.com", status)
    await world.handler.mark_verified(pb.MarkVerifiedRequest(id=ann.id), call("MarkVerified"))
    assert (await world.read(ann.id)).status == status
    assert world.events() == []


async def test_mark_verified_errors(world: World) -> None:
    ann = await world.create("ann@example.com")
    bob = await world.create("bob@example.com")
    deleted = await world.create("dee@example.com", "deleted")
    with pytest.raises(NotFound):
        await world.handler.mark_verified(pb.MarkVerifiedRequest(id="nope"), call("MarkVerified"))
    with pytest.raises(NotFound):
        await world.handler.mark_verified(
            pb.MarkVerifiedRequest(id=deleted.id), call("MarkVerified")
        )
    with pytest.raises(BadRequest):
        await world.handler.mark_verified(pb.MarkVerifiedRequest(), call("MarkVerified"))
    with pytest.raises(Unauthorized):
        await world.handler.mark_verified(
            pb.MarkVerifiedRequest(id=ann.id), call("MarkVerified", None)
        )
    as_ann = call("MarkVerified", customer_account(ann))
    for other in (pb.MarkVerifiedRequest(id=bob.id), pb.MarkVerifiedRequest(id="nope")):
        with pytest.raises(Forbidden):
            await world.handler.mark_verified(other, as_ann)
    assert (await world.read(bob.id)).status == "unverified"
    assert world.events() == []


# -- Delete ---------------------------------------------------------------------------------


async def test_delete_marks_deleted_deletes_the_account_and_publishes(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    await world.handler.delete(pb.DeleteRequest(id=ann.id), call("Delete"))

    with pytest.raises(NotFound):
        await world.read(ann.id)
    assert [r.id for r in world.auth.delete.calls] == [ann.id]
    [event] = world.events()
    assert event.type == EventType.EventTypeDeleted
    assert event.customer.id == ann.id
    assert event.customer.email == ann.email
    assert event.customer.status == "deleted"
    assert event.caller_id == ADMIN.id
    world.assert_all_in_transaction()
    async with world.sessions() as session:
        kept = await records.find(session, customer_id=ann.id)
    assert kept is not None
    assert kept.status == "deleted"


async def test_delete_by_email_releases_the_email(world: World) -> None:
    ann = await world.create("ann@example.com", "active")
    await world.handler.delete(pb.DeleteRequest(email="Ann@Example.com"), call("Delete"))
    again = await world.handler.create(pb.CreateRequest(email=ann.email), call("Create"))
    assert again.customer.id != ann.id


async def test_deleting_a_deleted_customer_is_not_found(world: World) -> None:
    ann = await world.create("ann@example.com", "deleted")
    with pytest.raises(NotFound) as caught:
        await world.handler.delete(pb.DeleteRequest(id=ann.id), call("Delete"))
    assert caught.value.id == "customers.delete"
    with pytest.raises(NotFound):
        await world.handler.delete(pb.DeleteRequest(id="nope", force=True), call("Delete"))
    assert world.auth.delete.call_count == 0
    assert world.events() == []


async def test_force_delete_removes_the_record(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    await world.handler.delete(pb.DeleteRequest(id=ann.id, force=True), call("Delete"))
    async with world.sessions() as session:
        assert await records.find(session, customer_id=ann.id) is None
    assert [r.id for r in world.auth.delete.calls] == [ann.id]
    [event] = world.events()
    assert event.type == EventType.EventTypeDeleted
    assert event.customer.status == "deleted"
    world.assert_all_in_transaction()


@pytest.mark.parametrize("by", ["id", "email"])
async def test_force_delete_after_a_soft_delete_removes_the_record_quietly(
    world: World, by: str
) -> None:
    ann = await world.create("ann@example.com", "deleted")
    request = pb.DeleteRequest(force=True, **{by: getattr(ann, by)})
    await world.handler.delete(request, call("Delete"))
    async with world.sessions() as session:
        assert await records.find(session, customer_id=ann.id) is None
    assert world.events() == []  # its Deleted event went out with the soft delete
    with pytest.raises(NotFound):
        await world.handler.delete(request, call("Delete"))


async def test_delete_counts_an_already_deleted_auth_account_as_done(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.delete.raises(NotFound("auth.delete", "Account not found"))
    await world.handler.delete(pb.DeleteRequest(id=ann.id), call("Delete"))
    assert [e.type for e in world.events()] == [EventType.EventTypeDeleted]


async def test_delete_fails_cleanly_when_auth_fails(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.delete.raises(Unavailable("auth.delete", "Service auth is not available"))
    with pytest.raises(Unavailable) as caught:
        await world.handler.delete(pb.DeleteRequest(id=ann.id), call("Delete"))
    assert caught.value == Unavailable("customers.delete", "Service unavailable")
    assert (await world.read(ann.id)).status == "verified"
    assert world.events() == []


async def test_customer_deletes_itself_but_not_another(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    bob = await world.create("bob@example.com", "verified")
    as_ann = call("Delete", customer_account(ann))
    for other in (pb.DeleteRequest(id=bob.id), pb.DeleteRequest(email=bob.email, force=True)):
        with pytest.raises(Forbidden):
            await world.handler.delete(other, as_ann)
    assert world.auth.delete.call_count == 0
    await world.handler.delete(pb.DeleteRequest(email=ann.email), as_ann)
    assert [e.caller_id for e in world.events()] == [ann.id]
    assert (await world.read(bob.id)).status == "verified"


async def test_delete_needs_an_id_or_email_and_an_account(world: World) -> None:
    ann = await world.create("ann@example.com")
    with pytest.raises(BadRequest):
        await world.handler.delete(pb.DeleteRequest(force=True), call("Delete"))
    with pytest.raises(Unauthorized):
        await world.handler.delete(pb.DeleteRequest(id=ann.id), call("Delete", None))


# -- Ban / Unban ----------------------------------------------------------------------------


async def test_ban_blocks_and_deletes_the_account_and_publishes(world: World) -> None:
    ann = await world.create("ann@example.com", "active")
    await world.handler.ban(pb.BanRequest(email=ann.email), call("Ban"))
    assert (await world.read(ann.id)).status == "banned"
    assert [r.id for r in world.auth.block.calls] == [ann.id]
    assert [r.id for r in world.auth.delete.calls] == [ann.id]
    [event] = world.events()
    assert event.type == EventType.EventTypeBanned
    assert event.customer.status == "banned"
    assert event.caller_id == ADMIN.id
    world.assert_all_in_transaction()


async def test_banning_twice_is_harmless(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    await world.handler.ban(pb.BanRequest(id=ann.id), call("Ban", SERVICE))
    assert (await world.read(ann.id)).status == "banned"
    assert world.auth.block.call_count == 0
    assert world.events() == []


async def test_ban_fails_cleanly_when_auth_fails_and_a_retry_completes_it(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    world.auth.block.returns_once(Unavailable("auth.block", "Service auth is not available"))
    with pytest.raises(Unavailable):
        await world.handler.ban(pb.BanRequest(id=ann.id), call("Ban"))
    assert (await world.read(ann.id)).status == "verified"
    assert world.events() == []

    world.auth.delete.raises(NotFound("auth.delete", "Account not found"))
    await world.handler.ban(pb.BanRequest(id=ann.id), call("Ban"))
    assert (await world.read(ann.id)).status == "banned"
    assert [e.type for e in world.events()] == [EventType.EventTypeBanned]


async def test_ban_is_for_admins_and_services(world: World) -> None:
    ann = await world.create("ann@example.com", "verified")
    with pytest.raises(Forbidden):
        await world.handler.ban(pb.BanRequest(id=ann.id), call("Ban", customer_account(ann)))
    with pytest.raises(Unauthorized):
        await world.handler.ban(pb.BanRequest(id=ann.id), call("Ban", None))
    with pytest.raises(NotFound):
        await world.handler.ban(pb.BanRequest(id="nope"), call("Ban"))
    deleted = await world.create("dee@example.com", "deleted")
    with pytest.raises(NotFound):
        await world.handler.ban(pb.BanRequest(id=deleted.id), call("Ban"))
    assert world.auth.block.call_count == 0


async def test_unban_makes_a_fresh_account_unblocks_and_verifies(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    await world.handler.unban(pb.UnbanRequest(id=ann.id), call("Unban"))
    assert (await world.read(ann.id)).status == "verified"
    [generated] = world.auth.generate.calls
    assert generated.id == ann.id
    assert generated.type == "customer"
    assert list(generated.scopes) == ["customer"]
    assert generated.name == ann.email
    assert generated.secret == ""  # auth makes a random one: the customer resets it
    assert [r.id for r in world.auth.unblock.calls] == [ann.id]
    [event] = world.events()
    assert event.type == EventType.EventTypeUnbanned
    assert event.customer.status == "verified"
    world.assert_all_in_transaction()


@pytest.mark.parametrize("status", ["unverified", "verified", "active"])
async def test_unban_only_lifts_a_ban(world: World, status: str) -> None:
    ann = await world.create("ann@example.com", status)
    with pytest.raises(BadRequest) as caught:
        await world.handler.unban(pb.UnbanRequest(id=ann.id), call("Unban"))
    assert caught.value == BadRequest("customers.unban", "Customer is not banned")
    assert (await world.read(ann.id)).status == status
    assert world.auth.generate.call_count == 0
    assert world.events() == []


async def test_unban_counts_an_existing_account_as_done(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    world.auth.generate.raises(Conflict("auth.generate", "Account exists"))
    await world.handler.unban(pb.UnbanRequest(email=ann.email), call("Unban"))
    assert (await world.read(ann.id)).status == "verified"


async def test_unban_fails_cleanly_when_auth_fails(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    world.auth.unblock.raises(Unavailable("auth.unblock", "Service auth is not available"))
    with pytest.raises(Unavailable):
        await world.handler.unban(pb.UnbanRequest(id=ann.id), call("Unban"))
    assert (await world.read(ann.id)).status == "banned"
    assert world.events() == []


async def test_unban_is_for_admins_and_services(world: World) -> None:
    ann = await world.create("ann@example.com", "banned")
    with pytest.raises(Forbidden):
        await world.handler.unban(pb.UnbanRequest(id=ann.id), call("Unban", customer_account(ann)))
    with pytest.raises(NotFound):
        await world.handler.unban(pb.UnbanRequest(id="nope"), call("Unban"))
    with pytest.raises(BadRequest):
        await world.handler.unban(pb.UnbanRequest(), call("Unban"))
