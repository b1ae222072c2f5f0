"""Create: validation, idempotency for unverified customers, one customer per email."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from m3o.events.customers import EventType
from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, Unauthorized
from m3o.services.customers.names import HERO_NAMES
from m3o.services.customers.proto import customers_pb2 as pb
from services.customers.support import ADMIN, SERVICE, START, World, call, customer_account


async def test_create_stores_an_unverified_customer_and_publishes_created(world: World) -> None:
    created = (
        await world.handler.create(pb.CreateRequest(email="ann@example.com"), call("Create"))
    ).customer

    assert uuid.UUID(created.id).version == 4
    assert created.email == "ann@example.com"
    assert created.status == "unverified"
    assert created.created == created.updated == int(START.timestamp()) + 1
    assert created.meta["generated_name"] in HERO_NAMES
    assert await world.read(created.id) == created
    [event] = world.events()
    assert event.type == EventType.EventTypeCreated
    assert event.caller_id == ADMIN.id
    assert event.customer.id == created.id
    assert event.customer.email == created.email
    assert event.customer.status == "unverified"
    assert event.customer.created == created.created
    assert event.customer.updated == created.updated
    assert dict(event.customer.meta) == dict(created.meta)
    world.assert_all_in_transaction()


async def test_create_normalises_the_email(world: World) -> None:
    request = pb.CreateRequest(email="  Ann@Example.COM ")
    created = (await world.handler.create(request, call("Create"))).customer
    assert created.email == "ann@example.com"


@pytest.mark.parametrize("email", ["", "   "])
async def test_create_blank_email_is_bad_request(world: World, email: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.create(pb.CreateRequest(email=email), call("Create"))
    assert caught.value.to_dict() == {
        "id": "customers.create",
        "code": 400,
        "detail": "Email is required",
        "status": "Bad Request",
    }
    assert world.events() == []


@pytest.mark.parametrize(
    "email",
    ["ann", "ann@", "@example.com", "ann@example", "ann@@example.com", "a nn@example.com",
     "ann@example..com", "ann@.com", f"{'a' * 250}@example.com", "<script>@x.com",
     '"a"@example.com', "a\x00b@example.com", "ann@ex\u0430mple.com", "ann@example.com\r\n",
     "\tann@example.com", f"{'a' * 65}@example.com"],
)  # fmt: skip
async def test_create_invalid_email_is_bad_request_and_stores_nothing(
    world: World, email: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.create(pb.CreateRequest(email=email), call("Create"))
    assert caught.value.id == "customers.create"
    assert caught.value.detail.startswith("Invalid email: ")
    assert world.events() == []
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert list(listed.customers) == []


async def test_create_existing_unverified_email_returns_it_without_a_new_event(
    world: World,
) -> None:
    first = await world.create("ann@example.com")
    again = await world.handler.create(pb.CreateRequest(email="ANN@example.com"), call("Create"))
    assert again.customer == first
    assert world.events() == []


@pytest.mark.parametrize("status", ["verified", "active", "banned"])
async def test_create_existing_verified_email_is_conflict(world: World, status: str) -> None:
    await world.create("ann@example.com", status)
    with pytest.raises(Conflict) as caught:
        await world.handler.create(pb.CreateRequest(email="ann@example.com"), call("Create"))
    assert caught.value.id == "customers.create.exists"
    assert caught.value.code == 409
    assert world.events() == []


async def test_create_after_delete_makes_a_new_customer_with_a_new_id(world: World) -> None:
    old = await world.create("ann@example.com", "deleted")
    new = (
        await world.handler.create(pb.CreateRequest(email="ann@example.com"), call("Create"))
    ).customer
    assert new.id != old.id
    assert new.status == "unverified"
    assert [e.type for e in world.events()] == [EventType.EventTypeCreated]


async def test_service_may_create(world: World) -> None:
    created = await world.handler.create(
        pb.CreateRequest(email="ann@example.com"), call("Create", SERVICE)
    )
    assert created.customer.email == "ann@example.com"
    assert world.events()[0].caller_id == SERVICE.id


async def test_anonymous_create_is_unauthorized(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.handler.create(pb.CreateRequest(email="ann@example.com"), call("Create", None))


async def test_customer_create_is_forbidden(world: World) -> None:
    ann = await world.create("ann@example.com")
    with pytest.raises(Forbidden):
        await world.handler.create(
            pb.CreateRequest(email="bob@example.com"), call("Create", customer_account(ann))
        )
    with pytest.raises(Forbidden):
        apikey = Account(id="k1", type="apikey", metadata={"apikey_owner": "p1"})
        await world.handler.create(
            pb.CreateRequest(email="bob@example.com"), call("Create", apikey)
        )
    assert world.events() == []


async def test_concurrent_creates_of_one_email_make_one_customer(world: World) -> None:
    results = await asyncio.gather(
        *(
            world.handler.create(pb.CreateRequest(email="ann@example.com"), call("Create"))
            for _ in range(20)
        )
    )
    assert len({result.customer.id for result in results}) == 1
    assert [e.type for e in world.events()] == [EventType.EventTypeCreated]
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert [c.id for c in listed.customers] == [results[0].customer.id]
