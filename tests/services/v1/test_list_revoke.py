"""ListKeys and RevokeKey: the caller's keys only; a revoked key is gone everywhere."""

from __future__ import annotations

import pytest

from m3o.events.customers import EventType
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from m3o.services.v1.keys.format import hash_key
from m3o.services.v1.owners import Project
from m3o.services.v1.proto import v1_pb2 as pb
from services.v1.support import ADMIN, ANN, BOB, GATEWAY, PEPPER, World, call


async def list_keys(world: World, account: object = ANN, project_id: str = "") -> list[pb.APIKey]:
    request = pb.ListRequest(project_id=project_id)
    response = await world.handler.list_keys(request, call("ListKeys", account))  # type: ignore[arg-type]
    return list(response.api_keys)


async def revoke(world: World, key_id: str, account: object = ANN) -> None:
    await world.handler.revoke_key(pb.RevokeRequest(id=key_id), call("RevokeKey", account))  # type: ignore[arg-type]


async def test_list_returns_the_callers_keys_newest_first_without_the_keys(world: World) -> None:
    first = await world.generate(scopes=["helloworld"], description="first")
    second = await world.generate(scopes=["*"], description="second")
    await world.generate(account=BOB)
    listed = await list_keys(world)
    assert [k.id for k in listed] == [second.api_key_id, first.api_key_id]
    newest = listed[0]
    assert newest.description == "second"
    assert list(newest.scopes) == ["*"]
    assert newest.status == "active"
    assert newest.status_message == ""
    assert newest.last_seen == 0
    assert newest.project_id == ANN.id
    assert newest.created_time > listed[1].created_time > 0
    assert first.api_key not in str(listed) and second.api_key not in str(listed)


async def test_list_covers_every_project_of_the_caller(world: World) -> None:
    world.projects.by_account[BOB.id] = [Project(id="team", billing_account="boss")]
    team_key = await world.generate(account=BOB)
    world.projects.by_account[ANN.id] = [
        Project(id=ANN.id, billing_account=ANN.id),
        Project(id="team", billing_account="boss"),
    ]
    own_key = await world.generate(account=ANN)
    assert {k.id for k in await list_keys(world)} == {team_key.api_key_id, own_key.api_key_id}


async def test_list_of_one_project_of_the_caller(world: World) -> None:
    team = Project(id="team", billing_account="boss")
    world.projects.by_account[ANN.id] = [Project(id=ANN.id, billing_account=ANN.id), team]
    team_key = await world.generate(project_id="team")
    await world.generate()
    assert [k.id for k in await list_keys(world, project_id=" team ")] == [team_key.api_key_id]
    with pytest.raises(NotFound) as raised:
        await list_keys(world, project_id="someone-elses")
    assert raised.value == NotFound("v1.listkeys", "Project not found")


async def test_an_admin_lists_the_keys_of_the_project_they_name(world: World) -> None:
    team = Project(id="team", billing_account="boss")
    world.projects.known["team"] = team
    world.projects.by_account[ANN.id] = [team]
    team_key = await world.generate(project_id="team")
    await world.generate(account=BOB)
    assert [k.id for k in await list_keys(world, ADMIN, "team")] == [team_key.api_key_id]
    assert world.projects.read == ["team"]


async def test_an_admin_listing_keys_must_name_a_known_project(world: World) -> None:
    await world.generate()
    with pytest.raises(BadRequest) as raised:
        await list_keys(world, ADMIN)
    assert raised.value == BadRequest(
        "v1.listkeys", "Missing project_id field: an admin has no project of their own"
    )
    with pytest.raises(NotFound) as not_found:
        await list_keys(world, ADMIN, "nope")
    assert not_found.value == NotFound("v1.listkeys", "Project not found")


async def test_list_with_no_keys_is_empty(world: World) -> None:
    assert await list_keys(world) == []


async def test_list_needs_a_customer(world: World) -> None:
    with pytest.raises(Unauthorized):
        await list_keys(world, None)
    with pytest.raises(Forbidden):
        await list_keys(world, GATEWAY)


async def test_list_with_projects_failing_is_unavailable(world: World) -> None:
    world.projects.error = Unavailable("projects", "down")
    with pytest.raises(Unavailable) as raised:
        await list_keys(world)
    assert raised.value == Unavailable("v1.listkeys", "Service unavailable")


async def test_revoke_deletes_the_row_the_mirror_and_the_auth_account(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    response = await world.generate()
    key_hash = hash_key(response.api_key, PEPPER)
    assert await world.mirrored(key_hash) is not None
    world.forget_calls()
    await revoke(world, response.api_key_id)
    assert await world.row(response.api_key_id) is None
    assert await world.mirrored(key_hash) is None
    assert [r.id for r in world.auth.delete.calls] == [response.api_key_id]
    [event] = world.events()
    assert event.type == EventType.EventTypeDeleteKey
    assert event.delete_key.id == response.api_key_id
    assert event.customer.id == ANN.id
    assert event.caller_id == ANN.id
    assert event.project_id == ANN.id
    world.assert_all_in_transaction()
    assert await list_keys(world) == []


async def test_revoke_without_an_id_is_a_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as raised:
        await revoke(world, "")
    assert raised.value == BadRequest("v1.revokekey", "Missing ID field")


async def test_revoking_another_customers_key_is_not_found(world: World) -> None:
    bobs = await world.generate(account=BOB)
    world.forget_calls()
    with pytest.raises(NotFound) as raised:
        await revoke(world, bobs.api_key_id, ANN)
    assert raised.value == NotFound("v1.revokekey", "Not found")
    assert await world.row(bobs.api_key_id) is not None
    assert world.auth.delete.call_count == 0
    assert world.events() == []


async def test_revoking_an_unknown_key_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as raised:
        await revoke(world, "no-such-key")
    assert raised.value == NotFound("v1.revokekey", "Not found")


async def test_revoking_twice_is_not_found_the_second_time(world: World) -> None:
    response = await world.generate()
    await revoke(world, response.api_key_id)
    with pytest.raises(NotFound):
        await revoke(world, response.api_key_id)


async def test_a_member_may_revoke_a_key_of_a_shared_project(world: World) -> None:
    world.projects.by_account[BOB.id] = [Project(id="team", billing_account=BOB.id)]
    world.projects.by_account[ANN.id] = [Project(id="team", billing_account=BOB.id)]
    bobs = await world.generate(account=BOB)
    await revoke(world, bobs.api_key_id, ANN)
    assert await world.row(bobs.api_key_id) is None


async def test_an_admin_may_revoke_any_key(world: World) -> None:
    response = await world.generate(account=BOB)
    world.forget_calls()
    await revoke(world, response.api_key_id, ADMIN)
    assert await world.row(response.api_key_id) is None
    [event] = world.events()
    assert event.customer.id == BOB.id  # the customer who pays for it
    assert event.caller_id == ADMIN.id


async def test_revoke_with_the_counter_store_down_changes_nothing(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate()
    world.forget_calls()
    world.counters.fail_delete = True
    with pytest.raises(Unavailable):
        await revoke(world, response.api_key_id)
    assert await world.row(response.api_key_id) is not None
    assert world.auth.delete.call_count == 0
    assert world.events() == []


async def test_revoke_with_auth_failing_keeps_the_row_and_a_retry_completes(
    world: World,
) -> None:
    response = await world.generate()
    world.forget_calls()
    world.auth.delete.returns_once(Unavailable("auth", "down"))
    with pytest.raises(Unavailable):
        await revoke(world, response.api_key_id)
    assert await world.row(response.api_key_id) is not None
    assert world.events() == []
    world.auth.delete.returns_once(NotFound("auth.delete", "Account not found"))
    await revoke(world, response.api_key_id)
    assert await world.row(response.api_key_id) is None
    assert len(world.events()) == 1
