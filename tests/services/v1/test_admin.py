"""BlockKey, UnblockKey, DeleteCustomer (admin) and ListAPIs."""

from __future__ import annotations

import pytest

from m3o.events.customers import EventType
from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from m3o.services.v1.keys.format import hash_key
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.view import KeyStatus
from services.v1.support import ADMIN, ANN, BOB, GATEWAY, PEPPER, World, call, catalog_of


async def block(
    world: World,
    *,
    user_id: str = "",
    key_id: str = "",
    message: str = "",
    account: Account | None = ADMIN,
) -> None:
    request = pb.BlockKeyRequest(user_id=user_id, key_id=key_id, message=message)
    await world.handler.block_key(request, call("BlockKey", account))


async def unblock(
    world: World, *, user_id: str = "", key_id: str = "", account: Account | None = ADMIN
) -> None:
    request = pb.UnblockKeyRequest(user_id=user_id, key_id=key_id)
    await world.handler.unblock_key(request, call("UnblockKey", account))


async def test_block_one_key_with_a_message(mirrored_world: World) -> None:
    world = mirrored_world
    blocked = await world.generate()
    other = await world.generate()
    world.forget_calls()
    await block(world, key_id=blocked.api_key_id, message="Out of credit")
    row = await world.row(blocked.api_key_id)
    assert row is not None
    assert (row.status, row.status_message) == (KeyStatus.BLOCKED, "Out of credit")
    untouched = await world.row(other.api_key_id)
    assert untouched is not None and untouched.status is KeyStatus.ACTIVE
    record = await world.mirrored(hash_key(blocked.api_key, PEPPER))
    assert record is not None
    assert (record.status, record.status_message) == (KeyStatus.BLOCKED, "Out of credit")
    [event] = world.events()
    assert event.type == EventType.EventTypeBlockKey
    assert event.block_key.id == blocked.api_key_id
    assert event.customer.id == ANN.id
    assert event.caller_id == ADMIN.id
    assert event.project_id == ANN.id
    world.assert_all_in_transaction()


async def test_block_without_a_message_says_the_key_is_blocked(world: World) -> None:
    response = await world.generate()
    await block(world, key_id=response.api_key_id)
    row = await world.row(response.api_key_id)
    assert row is not None
    assert row.status_message == "This key has been blocked"


async def test_block_every_key_of_a_user(world: World) -> None:
    first = await world.generate()
    second = await world.generate()
    bobs = await world.generate(account=BOB)
    world.forget_calls()
    await block(world, user_id=ANN.id, message="Unpaid")
    for key_id in (first.api_key_id, second.api_key_id):
        row = await world.row(key_id)
        assert row is not None and row.status is KeyStatus.BLOCKED
    bob_row = await world.row(bobs.api_key_id)
    assert bob_row is not None and bob_row.status is KeyStatus.ACTIVE
    assert sorted(e.block_key.id for e in world.events()) == sorted(
        [first.api_key_id, second.api_key_id]
    )


async def test_blocking_a_blocked_key_again_with_the_same_message_publishes_nothing(
    world: World,
) -> None:
    response = await world.generate()
    await block(world, key_id=response.api_key_id, message="m")
    world.forget_calls()
    await block(world, key_id=response.api_key_id, message="m")
    assert world.events() == []


async def test_blocking_a_users_keys_leaves_keys_blocked_for_another_reason(
    world: World,
) -> None:
    response = await world.generate()
    await block(world, key_id=response.api_key_id, message="first reason")
    await block(world, user_id=ANN.id, message="second reason")
    row = await world.row(response.api_key_id)
    assert row is not None and row.status_message == "first reason"


async def test_unblock_one_key(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate()
    await block(world, key_id=response.api_key_id, message="m")
    world.forget_calls()
    await unblock(world, key_id=response.api_key_id)
    row = await world.row(response.api_key_id)
    assert row is not None
    assert (row.status, row.status_message) == (KeyStatus.ACTIVE, "")
    record = await world.mirrored(hash_key(response.api_key, PEPPER))
    assert record is not None and record.status is KeyStatus.ACTIVE
    [event] = world.events()
    assert event.type == EventType.EventTypeUnblockKey
    assert event.unblock_key.id == response.api_key_id


async def test_unblock_every_key_of_a_user(world: World) -> None:
    first = await world.generate()
    second = await world.generate()
    await block(world, user_id=ANN.id)
    world.forget_calls()
    await unblock(world, user_id=ANN.id)
    for key_id in (first.api_key_id, second.api_key_id):
        row = await world.row(key_id)
        assert row is not None and row.status is KeyStatus.ACTIVE
    assert len(world.events()) == 2


async def test_unblocking_an_active_key_publishes_nothing(world: World) -> None:
    response = await world.generate()
    world.forget_calls()
    await unblock(world, key_id=response.api_key_id)
    assert world.events() == []


async def test_a_key_of_another_user_is_not_found(world: World) -> None:
    response = await world.generate()
    with pytest.raises(NotFound) as raised:
        await block(world, user_id=BOB.id, key_id=response.api_key_id)
    assert raised.value == NotFound("v1.blockkey", "Not found")
    with pytest.raises(NotFound) as raised:
        await unblock(world, user_id=BOB.id, key_id=response.api_key_id)
    assert raised.value == NotFound("v1.unblockkey", "Not found")


async def test_an_unknown_key_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await block(world, key_id="nope")
    with pytest.raises(NotFound):
        await unblock(world, key_id="nope")


async def test_neither_user_nor_key_is_a_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as raised:
        await block(world)
    assert raised.value == BadRequest("v1.blockkey", "Missing user_id field")
    with pytest.raises(BadRequest) as raised:
        await unblock(world)
    assert raised.value == BadRequest("v1.unblockkey", "Missing user_id field")


async def test_a_too_long_message_is_a_bad_request(world: World) -> None:
    response = await world.generate()
    with pytest.raises(BadRequest) as raised:
        await block(world, key_id=response.api_key_id, message="m" * 501)
    assert raised.value == BadRequest("v1.blockkey", "message is longer than 500 characters")


async def test_a_user_without_keys_is_fine(world: World) -> None:
    await block(world, user_id="nobody")
    await unblock(world, user_id="nobody")
    assert world.events() == []


@pytest.mark.parametrize("account", [ANN, None])
async def test_block_and_unblock_need_an_admin_or_a_service(
    world: World, account: Account | None
) -> None:
    response = await world.generate()
    kind = Unauthorized if account is None else Forbidden
    with pytest.raises(kind):
        await block(world, key_id=response.api_key_id, account=account)
    with pytest.raises(kind):
        await unblock(world, key_id=response.api_key_id, account=account)
    row = await world.row(response.api_key_id)
    assert row is not None and row.status is KeyStatus.ACTIVE


async def test_a_service_may_block(world: World) -> None:
    response = await world.generate()
    await block(world, key_id=response.api_key_id, account=GATEWAY)
    row = await world.row(response.api_key_id)
    assert row is not None and row.status is KeyStatus.BLOCKED


async def test_a_mirror_write_failing_after_block_removes_the_entry(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate()
    key_hash = hash_key(response.api_key, PEPPER)
    world.counters.fail_set = True
    await block(world, key_id=response.api_key_id)
    row = await world.row(response.api_key_id)
    assert row is not None and row.status is KeyStatus.BLOCKED
    assert await world.mirrored(key_hash) is None  # the gateway reloads it: blocked


async def test_a_mirror_down_after_block_is_logged_and_the_block_stands(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    response = await world.generate()
    world.counters.fail_set = True
    world.counters.fail_delete = True
    await block(world, key_id=response.api_key_id)
    row = await world.row(response.api_key_id)
    assert row is not None and row.status is KeyStatus.BLOCKED


# -- DeleteCustomer ------------------------------------------------------------------------------


async def test_delete_customer_deletes_every_key_they_pay_for(mirrored_world: World) -> None:
    world = mirrored_world
    first = await world.generate()
    second = await world.generate()
    bobs = await world.generate(account=BOB)
    world.forget_calls()
    request = pb.DeleteCustomerRequest(id=ANN.id)
    await world.handler.delete_customer(request, call("DeleteCustomer", ADMIN))
    assert await world.row(first.api_key_id) is None
    assert await world.row(second.api_key_id) is None
    assert await world.row(bobs.api_key_id) is not None
    for response in (first, second):
        assert await world.mirrored(hash_key(response.api_key, PEPPER)) is None
    assert await world.mirrored(hash_key(bobs.api_key, PEPPER)) is not None
    assert sorted(r.id for r in world.auth.delete.calls) == sorted(
        [first.api_key_id, second.api_key_id]
    )
    events = world.events()
    assert {e.type for e in events} == {EventType.EventTypeDeleteKey}
    assert sorted(e.delete_key.id for e in events) == sorted([first.api_key_id, second.api_key_id])
    assert {e.customer.id for e in events} == {ANN.id}
    world.assert_all_in_transaction()


async def test_delete_customer_without_an_id_is_a_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(), call("DeleteCustomer", ADMIN)
        )
    assert raised.value == BadRequest("v1.deletecustomer", "Missing ID field")


async def test_delete_customer_needs_an_admin(world: World) -> None:
    await world.generate()
    with pytest.raises(Forbidden):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", ANN)
        )
    assert len(await world.all_rows()) == 1


async def test_delete_customer_with_auth_failing_is_unavailable_and_keeps_the_rows(
    world: World,
) -> None:
    await world.generate()
    world.auth.delete.raises(Unavailable("auth", "down"))
    with pytest.raises(Unavailable):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", ADMIN)
        )
    assert len(await world.all_rows()) == 1


# -- ListAPIs ------------------------------------------------------------------------------------


async def test_list_apis_returns_the_published_names_sorted(world: World) -> None:
    world.publicapi.list.returns(catalog_of("helloworld", "Cache", "db"))
    response = await world.handler.list_apis(pb.ListAPIsRequest(), call("ListAPIs"))
    assert list(response.names) == ["cache", "db", "helloworld"]


async def test_list_apis_needs_a_customer(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.handler.list_apis(pb.ListAPIsRequest(), call("ListAPIs", None))


async def test_list_apis_with_publicapi_failing_is_unavailable(world: World) -> None:
    world.publicapi.list.raises(Unavailable("publicapi", "down"))
    with pytest.raises(Unavailable) as raised:
        await world.handler.list_apis(pb.ListAPIsRequest(), call("ListAPIs"))
    assert raised.value == Unavailable("v1.listapis", "Service unavailable")
