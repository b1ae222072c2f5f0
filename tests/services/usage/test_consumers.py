"""customers and projects events: tiers for everything a customer pays for, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.events.customers import EventType
from m3o.events.projects import Event as ProjectEvent
from m3o.events.projects import EventType as ProjectEventType
from m3o.events.projects import events_pb2 as projects_events_pb
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.usage.counters import monthly_key, tier_of
from m3o.services.usage.proto import usage_pb2 as pb
from services.usage.support import ADMIN, START, World, call, customer_delivery, request_delivery


def pays_for(world: World, *project_ids: str) -> None:
    world.projects.list.returns(
        projects_pb.ListResponse(
            projects=[
                projects_pb.Project(id=project_id, billing_account="cust-1")
                for project_id in project_ids
            ]
        )
    )


def project_delivery(
    event_type: ProjectEventType.ValueType, project_id: str, billing_account: str = "cust-1"
) -> Delivery:
    event = ProjectEvent(type=event_type)
    data = projects_events_pb.ProjectCreated(
        id=project_id, name="p", billing_account=billing_account
    )
    if event_type == ProjectEventType.EventTypeProjectCreated:
        event.project_created.CopyFrom(data)
    else:
        event.project_deleted.id = project_id
        event.project_deleted.billing_account = billing_account
    return Delivery(
        id=f"project-{project_id}",
        topic="projects",
        type_name=ProjectEventType.Name(event_type),
        time=START,
        payload=event.SerializeToString(),
    )


async def test_a_subscription_sets_the_tier_of_every_project_the_customer_pays_for(
    world: World,
) -> None:
    pays_for(world, "cust-1", "proj-a", "proj-b")
    changed = customer_delivery(
        EventType.EventTypeSubscriptionChanged, customer_id="cust-1", tier="pro"
    )
    await world.account_events.handle_customer(changed)

    assert [r.billing_account_id for r in world.projects.list.calls] == ["cust-1"]
    for holder in ("cust-1", "proj-a", "proj-b"):
        assert await tier_of(world.counters, holder) == "pro"
    assert await tier_of(world.counters, "proj-c") == "free"

    await world.account_events.handle_customer(changed)  # redelivered: the same
    assert await tier_of(world.counters, "proj-a") == "pro"


async def test_a_late_older_subscription_event_changes_nothing(world: World) -> None:
    pays_for(world, "cust-1")
    newer = customer_delivery(
        EventType.EventTypeSubscriptionChanged, "cust-1", tier="free", event_id="2"
    )
    older = customer_delivery(
        EventType.EventTypeSubscriptionChanged,
        "cust-1",
        tier="business",
        at=START - timedelta(minutes=5),
        event_id="1",
    )
    await world.account_events.handle_customer(newer)
    await world.account_events.handle_customer(older)
    assert await tier_of(world.counters, "cust-1") == "free"
    assert await world.tiers.tier("cust-1") == "free"


async def test_an_unreachable_projects_service_fails_the_event_for_a_retry(
    world: World,
) -> None:
    world.projects.list.raises(Unavailable("projects", "down"))
    with pytest.raises(Unavailable):
        await world.account_events.handle_customer(
            customer_delivery(EventType.EventTypeSubscriptionChanged, "cust-1", tier="pro")
        )
    assert await tier_of(world.counters, "cust-1") == "free"


async def test_a_new_project_takes_its_billing_accounts_tier(world: World) -> None:
    pays_for(world, "cust-1")
    await world.account_events.handle_customer(
        customer_delivery(EventType.EventTypeSubscriptionChanged, "cust-1", tier="solo")
    )
    await world.account_events.handle_project(
        project_delivery(ProjectEventType.EventTypeProjectCreated, "proj-new")
    )
    assert await tier_of(world.counters, "proj-new") == "solo"

    await world.account_events.handle_project(
        project_delivery(ProjectEventType.EventTypeProjectCreated, "proj-x", "cust-9")
    )
    assert await tier_of(world.counters, "proj-x") == "free"


async def test_deleted_customers_and_projects_lose_their_usage(world: World) -> None:
    await world.record(request_delivery("e1", project="cust-1"))
    await world.record(request_delivery("e2", project="proj-a"))
    await world.counters.incr(monthly_key("cust-1", "total", START), 1)
    await world.counters.incr(monthly_key("proj-a", "total", START), 1)

    await world.account_events.handle_customer(
        customer_delivery(EventType.EventTypeDeleted, "cust-1")
    )
    await world.account_events.handle_project(
        project_delivery(ProjectEventType.EventTypeProjectDeleted, "proj-a")
    )

    for gone in ("cust-1", "proj-a"):
        usage = await world.handler.read(pb.ReadRequest(customer_id=gone), call("Read", ADMIN))
        assert usage == pb.ReadResponse(quota_remaining=10_000)
        assert await world.counters.get(monthly_key(gone, "total", START)) == 0


@pytest.mark.parametrize(
    "event_type",
    [EventType.EventTypeCreated, EventType.EventTypeLogin, EventType.EventTypeBanned],
)
async def test_other_customer_events_change_nothing(
    world: World, event_type: EventType.ValueType
) -> None:
    await world.record(request_delivery("e1", project="cust-1"))
    await world.account_events.handle_customer(customer_delivery(event_type, "cust-1"))
    assert world.projects.list.call_count == 0
    usage = await world.handler.read(pb.ReadRequest(customer_id="cust-1"), call("Read", ADMIN))
    assert set(usage.usage) == {"helloworld"}


async def test_an_event_without_a_customer_is_skipped(world: World) -> None:
    await world.account_events.handle_customer(
        customer_delivery(EventType.EventTypeSubscriptionChanged, "", tier="pro")
    )
    assert world.projects.list.call_count == 0
