"""Read and List: lookups, pagination, and who may see which customer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import SERVICE, World, call, customer_account


async def test_read_by_id_or_email_returns_the_customer(world: World) -> None:
    ann = await world.create("ann@example.com")
    by_id = await world.handler.read(pb.ReadRequest(id=ann.id), call("Read"))
    by_email = await world.handler.read(pb.ReadRequest(email=" ANN@example.com"), call("Read"))
    assert by_id.customer == by_email.customer == ann
    assert world.events() == []


@pytest.mark.parametrize("status", ["verified", "active", "banned"])
async def test_read_shows_every_status_but_deleted(world: World, status: str) -> None:
    ann = await world.create("ann@example.com", status)
    assert (await world.read(ann.id)).status == status


async def test_read_unknown_customer_is_not_found(world: World) -> None:
    for request in (pb.ReadRequest(id="nope"), pb.ReadRequest(email="nobody@example.com")):
        with pytest.raises(NotFound) as caught:
            await world.handler.read(request, call("Read"))
        assert caught.value.to_dict() == {
            "id": "customers.read.notfound",
            "code": 404,
            "detail": "Customer not found",
            "status": "Not Found",
        }


async def test_read_deleted_customer_is_not_found(world: World) -> None:
    ann = await world.create("ann@example.com", "deleted")
    for request in (pb.ReadRequest(id=ann.id), pb.ReadRequest(email=ann.email)):
        with pytest.raises(NotFound) as caught:
            await world.handler.read(request, call("Read"))
        assert caught.value.id == "customers.read.notfound"


async def test_read_without_id_or_email_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.read(pb.ReadRequest(email="  "), call("Read"))
    assert caught.value.id == "customers.read"


async def test_customer_reads_itself_by_id_or_email(world: World) -> None:
    ann = await world.create("ann@example.com")
    ctx = call("Read", customer_account(ann))
    assert (await world.handler.read(pb.ReadRequest(id=ann.id), ctx)).customer == ann
    assert (await world.handler.read(pb.ReadRequest(email="Ann@example.com"), ctx)).customer == ann


@pytest.mark.parametrize(
    "request_for",
    [
        lambda bob: pb.ReadRequest(id=bob.id),
        lambda bob: pb.ReadRequest(email=bob.email),
        lambda bob: pb.ReadRequest(id="missing-id"),
        lambda bob: pb.ReadRequest(email="missing@example.com"),
    ],
    ids=["other-id", "other-email", "unknown-id", "unknown-email"],
)
async def test_customer_reading_another_customer_is_forbidden_whether_or_not_it_exists(
    world: World, request_for: Callable[[pb.Customer], pb.ReadRequest]
) -> None:
    ann = await world.create("ann@example.com")
    bob = await world.create("bob@example.com")
    with pytest.raises(Forbidden):
        await world.handler.read(request_for(bob), call("Read", customer_account(ann)))


async def test_service_reads_any_customer_and_anonymous_may_not(world: World) -> None:
    ann = await world.create("ann@example.com")
    assert (await world.handler.read(pb.ReadRequest(id=ann.id), call("Read", SERVICE))).customer
    with pytest.raises(Unauthorized):
        await world.handler.read(pb.ReadRequest(id=ann.id), call("Read", None))


async def test_list_returns_non_deleted_customers_oldest_first(world: World) -> None:
    ann = await world.create("ann@example.com")
    await world.create("bob@example.com", "deleted")
    cid = await world.create("cid@example.com", "banned")
    dee = await world.create("dee@example.com", "verified")
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert [c.email for c in listed.customers] == [ann.email, cid.email, dee.email]
    assert listed.customers[1].status == "banned"
    assert listed.customers[2].status == "verified"


async def test_list_pages_with_limit_and_offset(world: World) -> None:
    emails = [f"c{i}@example.com" for i in range(5)]
    for email in emails:
        await world.create(email)
    page = await world.handler.list(pb.ListRequest(limit=2, offset=1), call("List"))
    assert [c.email for c in page.customers] == emails[1:3]
    rest = await world.handler.list(pb.ListRequest(limit=10, offset=4), call("List"))
    assert [c.email for c in rest.customers] == emails[4:]


async def test_list_without_limit_returns_at_most_100(world: World) -> None:
    for i in range(101):
        await world.create(f"c{i:03}@example.com")
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert len(listed.customers) == 100
    assert listed.customers[-1].email == "c099@example.com"
    most = await world.handler.list(pb.ListRequest(limit=1000), call("List"))
    assert len(most.customers) == 101


@pytest.mark.parametrize(
    ("limit", "offset"),
    [(-1, 0), (0, -1), (1001, 0)],
    ids=["negative-limit", "negative-offset", "limit-over-max"],
)
async def test_list_bad_limit_or_offset_is_bad_request(
    world: World, limit: int, offset: int
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.list(pb.ListRequest(limit=limit, offset=offset), call("List"))
    assert caught.value.id == "customers.list"


async def test_list_is_for_admins_and_services_only(world: World) -> None:
    ann = await world.create("ann@example.com")
    assert len((await world.handler.list(pb.ListRequest(), call("List", SERVICE))).customers) == 1
    with pytest.raises(Forbidden):
        await world.handler.list(pb.ListRequest(), call("List", customer_account(ann)))
    with pytest.raises(Unauthorized):
        await world.handler.list(pb.ListRequest(), call("List", None))
