"""The default project: made once, on the caller's first List, even under concurrency."""

from __future__ import annotations

import asyncio

from m3o.events.projects import EventType
from m3o.runtime.errors import Forbidden
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.projects.handler import Projects
from m3o.services.projects.proto import projects_pb2 as pb
from services.projects.support import ANN, BOB, LIMITS, SERVICE, World, call, default_project


async def test_first_list_makes_the_default_project_and_publishes_it(world: World) -> None:
    assert await world.list(ANN) == [default_project(ANN.id)]

    [event] = world.events()
    assert event.type == EventType.EventTypeProjectCreated
    assert event.project_created.id == ANN.id
    assert event.project_created.name == "default"
    assert event.project_created.billing_account == ANN.id
    world.assert_all_in_transaction()
    row = await world.account_row(ANN.id)
    assert row is not None
    assert row["default_made"] is True


async def test_later_lists_return_it_without_another_event(world: World) -> None:
    first = await world.list(ANN)
    world.forget_events()
    assert await world.list(ANN) == first
    assert world.events() == []


async def test_a_customer_with_a_project_gets_no_default(world: World) -> None:
    created = await world.create("mine")
    world.forget_events()
    assert await world.list(ANN) == [created]
    assert world.events() == []


async def test_each_customer_gets_its_own_default(world: World) -> None:
    assert await world.list(ANN) == [default_project(ANN.id)]
    assert await world.list(BOB) == [default_project(BOB.id)]
    assert [e.project_created.id for e in world.events()] == [ANN.id, BOB.id]


async def test_concurrent_first_lists_make_one_default_project(world: World) -> None:
    results = await asyncio.gather(*(world.list(ANN) for _ in range(12)))

    assert all(result == [default_project(ANN.id)] for result in results)
    assert [e.project_created.id for e in world.events()] == [ANN.id]


async def test_concurrent_first_lists_in_two_handlers_make_one_default_project(
    world: World,
) -> None:
    """Two processes over one database: only the database can keep them apart."""
    other_publisher = FakePublisher()
    other = Projects(
        sessions=world.sessions,
        publisher=other_publisher,
        customers=FakeCustomersClient(),
        project_limits=LIMITS,
    )

    async def list_in_other() -> list[pb.Project]:
        response = await other.list(pb.ListRequest(), call("List"))
        return list(response.projects)

    results = await asyncio.gather(
        *(world.list(ANN) for _ in range(6)), *(list_in_other() for _ in range(6))
    )

    assert all(result == [default_project(ANN.id)] for result in results)
    published = world.events() + other_publisher.events("projects")
    assert len(published) == 1


async def test_a_first_list_racing_a_create_leaves_one_project_on_the_free_tier(
    world: World,
) -> None:
    results = await asyncio.gather(world.list(ANN), world.create("mine"), return_exceptions=True)

    assert all(isinstance(r, list | pb.Project | Forbidden) for r in results)
    billed = await world.list(SERVICE, ANN.id)
    assert len(billed) == 1
    assert len(world.events()) == 1
    assert await world.list(ANN) == billed


async def test_the_default_project_is_never_made_again_after_the_customer_is_deleted(
    world: World,
) -> None:
    await world.list(ANN)
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", SERVICE)
    )
    world.forget_events()
    assert await world.list(ANN) == []
    assert world.events() == []


async def test_a_customer_deleted_before_any_list_gets_no_default(world: World) -> None:
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(id=ANN.id), call("DeleteCustomer", SERVICE)
    )
    assert await world.list(ANN) == []
    assert world.events() == []
