"""DeleteCustomer and the customers consumer: Deleted removes projects, SubscriptionChanged
sets the tier."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.events.customers import TOPIC as CUSTOMERS
from m3o.events.customers import EventType as CustomerEventType
from m3o.events.customers import events_pb2 as customer_events
from m3o.events.projects import EventType
from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.runtime.events import Delivery
from m3o.runtime.store import transaction
from m3o.services.projects import records
from m3o.services.projects.consumers import CustomerEvents
from m3o.services.projects.erasure import Erasure
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


def consumer_of(world: World) -> CustomerEvents:
    return CustomerEvents(
        sessions=world.sessions,
        erasure=Erasure(sessions=world.sessions, publisher=world.publisher, clock=world.clock),
    )


def delivery(
    event_type: CustomerEventType.ValueType,
    customer_id: str,
    *,
    tier: str = "",
    at: timedelta = timedelta(0),
    event_id: str = "evt-1",
) -> Delivery:
    event = customer_events.Event(
        type=event_type, customer=customer_events.Customer(id=customer_id)
    )
    if event_type == CustomerEventType.EventTypeSubscriptionChanged:
        event.subscription_changed.tier = tier
    return Delivery(
        id=event_id,
        topic=CUSTOMERS,
        type_name=CustomerEventType.Name(event_type),
        time=START + at,
        payload=event.SerializeToString(),
    )


async def ann_with_projects(world: World) -> list[pb.Project]:
    """Ann on the solo tier with her default project, one more, and a seat in bob's."""
    consumer = consumer_of(world)
    await consumer.handle(
        delivery(CustomerEventType.EventTypeSubscriptionChanged, ANN.id, tier="solo")
    )
    made = [*await world.list(ANN), await world.create("second")]
    shared = ProjectRecord(
        id="bobs",
        name="bob's",
        billing_account=BOB.id,
        created=START,
        members=(MemberRecord(ANN.id), MemberRecord(BOB.id)),
    )
    async with transaction(world.sessions) as session:
        await records.insert_project(session, shared)
    world.forget_events()
    return made


async def test_deleted_removes_the_projects_and_publishes_project_deleted(world: World) -> None:
    made = await ann_with_projects(world)

    await consumer_of(world).handle(delivery(CustomerEventType.EventTypeDeleted, ANN.id))

    events = world.events()
    assert [e.type for e in events] == [EventType.EventTypeProjectDeleted] * 2
    assert [
        (e.project_deleted.id, e.project_deleted.name, e.project_deleted.billing_account)
        for e in events
    ] == [(p.id, p.name, ANN.id) for p in made]
    world.assert_all_in_transaction()
    assert await world.list(SERVICE, ANN.id) == []
    [bobs] = await world.list(BOB)
    assert [m.id for m in bobs.members] == [BOB.id]
    row = await world.account_row(ANN.id)
    assert row is not None
    assert row["deleted"] is not None


async def test_a_redelivered_deleted_publishes_nothing_more(world: World) -> None:
    await ann_with_projects(world)
    consumer = consumer_of(world)
    await consumer.handle(delivery(CustomerEventType.EventTypeDeleted, ANN.id))
    world.forget_events()

    await consumer.handle(delivery(CustomerEventType.EventTypeDeleted, ANN.id))

    assert world.events() == []
    assert await world.list(SERVICE, ANN.id) == []


async def test_deleting_a_customer_without_projects_publishes_nothing(world: World) -> None:
    await consumer_of(world).handle(delivery(CustomerEventType.EventTypeDeleted, ANN.id))
    assert world.events() == []


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_delete_customer_does_what_the_deleted_event_does(
    world: World, account: Account
) -> None:
    made = await ann_with_projects(world)

    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(id=f" {ANN.id} "), call("DeleteCustomer", account)
    )

    assert [e.project_deleted.id for e in world.events()] == [p.id for p in made]
    world.assert_all_in_transaction()
    assert await world.list(SERVICE, ANN.id) == []
    assert await world.list(ANN) == []


async def test_delete_customer_without_id_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(id=" "), call("DeleteCustomer", SERVICE)
        )
    assert caught.value == BadRequest("projects.deletecustomer", "Missing id")


@pytest.mark.parametrize("account", [ANN, APIKEY], ids=["customer", "apikey"])
async def test_delete_customer_is_for_admins_and_services(world: World, account: Account) -> None:
    await world.list(ANN)
    world.forget_events()
    with pytest.raises(Forbidden):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", account)
        )
    with pytest.raises(Unauthorized):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", None)
        )
    assert world.events() == []
    assert await world.list(ANN) == [default_project(ANN.id)]


async def test_subscription_changed_sets_the_tier(world: World) -> None:
    consumer = consumer_of(world)
    await consumer.handle(
        delivery(CustomerEventType.EventTypeSubscriptionChanged, ANN.id, tier="pro")
    )
    row = await world.account_row(ANN.id)
    assert row is not None
    assert (row["tier"], row["tier_changed"]) == ("pro", START)
    assert world.events() == []


async def test_an_older_subscription_change_arriving_late_changes_nothing(world: World) -> None:
    consumer = consumer_of(world)
    changed = CustomerEventType.EventTypeSubscriptionChanged
    await consumer.handle(delivery(changed, ANN.id, tier="pro", at=timedelta(minutes=2)))
    await consumer.handle(delivery(changed, ANN.id, tier="solo", at=timedelta(minutes=1)))
    row = await world.account_row(ANN.id)
    assert row is not None
    assert row["tier"] == "pro"
    await consumer.handle(delivery(changed, ANN.id, tier="", at=timedelta(minutes=3)))
    row = await world.account_row(ANN.id)
    assert row is not None
    assert row["tier"] == "free"


async def test_a_tier_change_keeps_the_default_project_made(world: World) -> None:
    await world.list(ANN)
    await consumer_of(world).handle(
        delivery(CustomerEventType.EventTypeSubscriptionChanged, ANN.id, tier="pro")
    )
    row = await world.account_row(ANN.id)
    assert row is not None
    assert (row["tier"], row["default_made"]) == ("pro", True)


@pytest.mark.parametrize(
    "event_type",
    [
        CustomerEventType.EventTypeCreated,
        CustomerEventType.EventTypeBanned,
        CustomerEventType.EventTypeSignup,
    ],
)
async def test_other_customer_events_are_ignored(
    world: World, event_type: CustomerEventType.ValueType
) -> None:
    await world.list(ANN)
    world.forget_events()
    await consumer_of(world).handle(delivery(event_type, ANN.id))
    assert world.events() == []
    assert await world.list(ANN) == [default_project(ANN.id)]


async def test_events_without_a_customer_are_skipped(world: World) -> None:
    await consumer_of(world).handle(delivery(CustomerEventType.EventTypeDeleted, ""))
    await consumer_of(world).handle(
        delivery(CustomerEventType.EventTypeSubscriptionChanged, "", tier="pro")
    )
    assert world.events() == []
    assert await world.account_row("") is None


def test_the_consumer_reads_the_customers_topic(world: World) -> None:
    consumer = consumer_of(world).consumer()
    assert consumer.topic == CUSTOMERS
    assert consumer.group == ""
