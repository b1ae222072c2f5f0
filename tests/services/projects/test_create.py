"""Create: validation, who may bill which account, the tier's project limit, the event."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from m3o.events.customers import EventType as CustomerEventType
from m3o.events.customers import events_pb2 as customer_events
from m3o.events.projects import EventType
from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.events import Delivery
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.projects.consumers import CustomerEvents
from m3o.services.projects.erasure import Erasure
from m3o.services.projects.proto import projects_pb2 as pb
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


async def change_tier(world: World, customer_id: str, tier: str) -> None:
    """Deliver customers/SubscriptionChanged to the projects consumer."""
    consumer = CustomerEvents(
        sessions=world.sessions,
        erasure=Erasure(sessions=world.sessions, publisher=world.publisher),
    )
    event = customer_events.Event(
        type=CustomerEventType.EventTypeSubscriptionChanged,
        customer=customer_events.Customer(id=customer_id),
        subscription_changed=customer_events.SubscriptionChanged(tier=tier),
    )
    await consumer.handle(
        Delivery(
            id=f"evt-{tier}",
            topic="customers",
            type_name="EventTypeSubscriptionChanged",
            time=START,
            payload=event.SerializeToString(),
        )
    )


async def test_create_stores_the_project_with_the_caller_as_admin_and_publishes_it(
    world: World,
) -> None:
    created = await world.create("  My site  ")

    assert uuid.UUID(created.id).version == 4
    assert created.name == "My site"
    assert created.billing_account == ANN.id
    assert [(m.id, list(m.roles)) for m in created.members] == [(ANN.id, ["admin"])]
    read = await world.handler.read(pb.ReadRequest(id=created.id), call("Read"))
    assert read.project == created
    [event] = world.events()
    assert event.type == EventType.EventTypeProjectCreated
    assert event.project_created.id == created.id
    assert event.project_created.name == "My site"
    assert event.project_created.billing_account == ANN.id
    world.assert_all_in_transaction()


async def test_create_answers_the_project_id_as_the_reference_did_and_the_project(
    world: World,
) -> None:
    response = await world.handler.create(pb.CreateRequest(name="site"), call("Create"))

    assert response.id == response.project.id != ""
    assert pb.CreateResponse.DESCRIPTOR.fields_by_name["id"].number == 1  # the reference's


async def test_customer_may_name_its_own_billing_account(world: World) -> None:
    request = pb.CreateRequest(name="site", billing_account=ANN.id)
    created = (await world.handler.create(request, call("Create"))).project
    assert created.billing_account == ANN.id
    assert world.customers.read.call_count == 0


@pytest.mark.parametrize("name", ["", "   "])
async def test_create_without_a_name_is_bad_request(world: World, name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.create(pb.CreateRequest(name=name), call("Create"))
    assert caught.value.to_dict() == {
        "id": "projects.create",
        "code": 400,
        "detail": "Missing name",
        "status": "Bad Request",
    }
    assert world.events() == []


async def test_create_with_a_name_too_long_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.create(pb.CreateRequest(name="x" * 201), call("Create"))
    assert caught.value == BadRequest("projects.create", "name is longer than 200 characters")
    assert (await world.create("x" * 200)).name == "x" * 200


async def test_customer_billing_another_account_is_forbidden(world: World) -> None:
    request = pb.CreateRequest(name="site", billing_account=BOB.id)
    with pytest.raises(Forbidden):
        await world.handler.create(request, call("Create"))
    assert world.events() == []
    assert await world.list(BOB, BOB.id) == []


async def test_free_tier_allows_one_project(world: World) -> None:
    first = await world.create("one")
    world.forget_events()
    with pytest.raises(Forbidden) as caught:
        await world.create("two")
    assert caught.value == Forbidden("projects.create", "The free tier allows 1 project")
    assert world.events() == []
    assert [p.id for p in await world.list()] == [first.id]


async def test_the_default_project_counts_toward_the_limit(world: World) -> None:
    assert await world.list() == [default_project(ANN.id)]
    with pytest.raises(Forbidden):
        await world.create("second")
    assert await world.list() == [default_project(ANN.id)]


async def test_limits_are_per_billing_account(world: World) -> None:
    await world.create("ann's", ANN)
    bobs = await world.create("bob's", BOB)
    assert bobs.billing_account == BOB.id


async def test_a_paid_tier_learnt_from_subscription_changed_raises_the_limit(
    world: World,
) -> None:
    await change_tier(world, ANN.id, "solo")
    made = [await world.create(f"p{i}") for i in range(3)]
    with pytest.raises(Forbidden) as caught:
        await world.create("p3")
    assert caught.value.detail == "The solo tier allows 3 projects"
    assert [p.id for p in await world.list()] == [p.id for p in made]
    assert len(world.events()) == 3


async def test_a_tier_without_a_configured_limit_gets_the_free_limit(world: World) -> None:
    await change_tier(world, ANN.id, "enterprise")
    await world.create("one")
    with pytest.raises(Forbidden) as caught:
        await world.create("two")
    assert caught.value.detail == "The enterprise tier allows 1 project"


async def test_concurrent_creates_never_exceed_the_limit(world: World) -> None:
    await change_tier(world, ANN.id, "solo")
    results = await asyncio.gather(
        *(world.create(f"p{i}") for i in range(8)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, pb.Project)]
    refused = [r for r in results if isinstance(r, Forbidden)]
    assert (len(made), len(refused)) == (3, 5)
    assert len(await world.list(ANN, ANN.id)) == 3
    assert len(world.events()) == 3


async def test_admin_creates_for_an_existing_billing_account_whose_customer_is_admin(
    world: World,
) -> None:
    world.customers.read.returns(
        customers_pb.ReadResponse(customer=customers_pb.Customer(id=BOB.id))
    )
    request = pb.CreateRequest(name="support", billing_account=f" {BOB.id} ")
    created = (await world.handler.create(request, call("Create", ADMIN))).project

    assert created.billing_account == BOB.id
    assert [(m.id, list(m.roles)) for m in created.members] == [(BOB.id, ["admin"])]
    assert [r.id for r in world.customers.read.calls] == [BOB.id]
    [event] = world.events()
    assert event.project_created.billing_account == BOB.id
    assert [p.id for p in await world.list(BOB)] == [created.id]


async def test_admin_without_billing_account_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.create(pb.CreateRequest(name="x"), call("Create", ADMIN))
    assert caught.value == BadRequest("projects.create", "Missing billing account")
    assert world.customers.read.call_count == 0


async def test_admin_with_an_unknown_billing_account_is_not_found(world: World) -> None:
    world.customers.read.raises(NotFound("customers.read.notfound", "Customer not found"))
    request = pb.CreateRequest(name="x", billing_account="ghost")
    with pytest.raises(NotFound) as caught:
        await world.handler.create(request, call("Create", ADMIN))
    assert caught.value == NotFound("projects.create", "Billing account not found")
    assert world.events() == []


@pytest.mark.parametrize(
    "failure",
    [Unavailable("customers.read", "down"), Unavailable("customers.read", "boom")],
    ids=["unavailable", "internal"],
)
async def test_customers_failing_is_unavailable_and_creates_nothing(
    world: World, failure: M3OError
) -> None:
    world.customers.read.raises(failure)
    request = pb.CreateRequest(name="x", billing_account=BOB.id)
    with pytest.raises(Unavailable) as caught:
        await world.handler.create(request, call("Create", ADMIN))
    assert caught.value == Unavailable("projects.create", "Service unavailable")
    assert world.events() == []
    assert await world.list(ADMIN, BOB.id) == []


async def test_a_deleted_billing_account_gets_no_new_project(world: World) -> None:
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", SERVICE)
    )
    with pytest.raises(NotFound) as caught:
        await world.create("late")
    assert caught.value == NotFound("projects.create", "Billing account not found")
    assert world.events() == []


async def test_a_failed_publish_leaves_no_project(world: World) -> None:
    world.publisher.raises(Unavailable("events", "down"))
    with pytest.raises(Unavailable):
        await world.create("lost")
    assert await world.list(ANN, ANN.id) == []


async def test_anonymous_create_is_unauthorized(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.handler.create(pb.CreateRequest(name="x"), call("Create", None))


@pytest.mark.parametrize("account", [SERVICE, APIKEY], ids=["service", "apikey"])
async def test_services_and_api_keys_may_not_create(world: World, account: Account) -> None:
    with pytest.raises(Forbidden):
        await world.handler.create(
            pb.CreateRequest(name="x", billing_account=ANN.id), call("Create", account)
        )
    assert world.events() == []
