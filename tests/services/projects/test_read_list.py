"""Read and List: who sees which project; the billing-account path."""

from __future__ import annotations

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.runtime.store import transaction
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.projects import records
from m3o.services.projects.proto import projects_pb2 as pb
from m3o.services.projects.records import MemberRecord, ProjectRecord
from services.projects.support import (
    ADMIN,
    ANN,
    APIKEY,
    BOB,
    SERVICE,
    START,
    World,
    call,
    default_project,
)


async def read(world: World, project_id: str, account: Account | None = ANN) -> pb.Project:
    return (await world.handler.read(pb.ReadRequest(id=project_id), call("Read", account))).project


async def shared_project(world: World) -> pb.Project:
    """A project billed to bob with ann as a member too (made directly: no RPC adds members).

    Members are listed by id."""
    record = ProjectRecord(
        id="shared",
        name="shared",
        billing_account=BOB.id,
        created=START,
        members=(MemberRecord(ANN.id, ("developer",)), MemberRecord(BOB.id)),
    )
    async with transaction(world.sessions) as session:
        await records.insert_project(session, record)
    return record.to_proto()


async def test_member_reads_its_project(world: World) -> None:
    created = await world.create("site")
    assert await read(world, f" {created.id} ") == created


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_admin_and_service_read_any_project(world: World, account: Account) -> None:
    created = await world.create("site")
    assert await read(world, created.id, account) == created


@pytest.mark.parametrize("project_id", ["", "  "])
async def test_read_without_id_is_bad_request(world: World, project_id: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await read(world, project_id)
    assert caught.value == BadRequest("projects.read", "Missing id")


async def test_read_unknown_project_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        await read(world, "nope")
    assert caught.value.to_dict() == {
        "id": "projects.read",
        "code": 404,
        "detail": "Project not found",
        "status": "Not Found",
    }


async def test_read_by_a_non_member_is_not_found(world: World) -> None:
    created = await world.create("site")
    with pytest.raises(NotFound) as caught:
        await read(world, created.id, BOB)
    assert caught.value == NotFound("projects.read", "Project not found")


async def test_a_member_that_does_not_pay_reads_the_project(world: World) -> None:
    shared = await shared_project(world)
    assert await read(world, "shared", ANN) == shared


async def test_read_anonymous_is_unauthorized_and_api_key_forbidden(world: World) -> None:
    created = await world.create("site")
    with pytest.raises(Unauthorized):
        await read(world, created.id, None)
    with pytest.raises(Forbidden):
        await read(world, created.id, APIKEY)


async def test_list_returns_the_caller_s_projects_oldest_first(world: World) -> None:
    shared = await shared_project(world)
    mine = await world.create("mine")
    assert await world.list(ANN) == [shared, mine]
    assert await world.list(BOB) == [shared]


async def test_list_by_billing_account_returns_what_it_pays_for(world: World) -> None:
    shared = await shared_project(world)
    mine = await world.create("mine")
    assert await world.list(ANN, ANN.id) == [mine]
    assert await world.list(BOB, BOB.id) == [shared]


async def test_list_by_billing_account_never_makes_the_default_project(world: World) -> None:
    assert await world.list(ANN, ANN.id) == []
    assert await world.list(ANN, f" {ANN.id} ") == []
    assert world.events() == []
    assert await world.account_row(ANN.id) is None


async def test_list_of_another_billing_account_is_forbidden(world: World) -> None:
    await world.create("bob's", BOB)
    with pytest.raises(Forbidden):
        await world.list(ANN, BOB.id)


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_admin_and_service_list_any_billing_account(world: World, account: Account) -> None:
    world.customers.read.returns(
        customers_pb.ReadResponse(customer=customers_pb.Customer(id=BOB.id))
    )
    created = await world.create("bob's", BOB)
    assert await world.list(account, BOB.id) == [created]


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_admin_and_service_must_name_a_billing_account(
    world: World, account: Account
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.list(account)
    assert caught.value == BadRequest("projects.list", "Missing billing_account_id")
    assert world.events() == []


async def test_list_anonymous_is_unauthorized_and_api_key_forbidden(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.list(None)
    with pytest.raises(Forbidden):
        await world.list(APIKEY)
    with pytest.raises(Forbidden):
        await world.list(APIKEY, "p1")
    assert world.events() == []


async def test_projects_appear_in_the_default_shape(world: World) -> None:
    assert await world.list(BOB) == [default_project(BOB.id)]
