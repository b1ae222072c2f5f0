"""The service definition: its handler served with the configured limits, and its consumer
and outbox on a real event bus."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events import customers, projects
from m3o.runtime.errors import Forbidden
from m3o.runtime.events import Delivery
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.projects.handler import Projects
from m3o.services.projects.proto import projects_pb2 as pb
from m3o.services.projects.proto.client import SPEC, ProjectsClient
from m3o.services.projects.service import definition
from m3o.services.projects.tables import metadata
from services.projects.support import ANN, default_project
from support.services import EveryTokenIs, dependencies, serve


def client_of(implementation: object) -> ProjectsClient:
    local = serve(SPEC, implementation, authenticator=EveryTokenIs(ANN))
    return ProjectsClient(local, StaticToken("ann-token"))


@pytest.mark.parametrize(
    ("document", "allowed"),
    [({"billing": {"project_limits": {"free": 2}}}, 2), ({}, 1)],
    ids=["configured", "default"],
)
async def test_definition_serves_the_handler_with_the_configured_project_limits(
    engine: AsyncEngine, sessions: SessionFactory, document: dict[str, object], allowed: int
) -> None:
    assert definition.name == "projects"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    parts = await definition.build(dependencies("projects", engine, sessions, document))
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Projects)
    assert [c.topic for c in parts.consumers] == [customers.TOPIC]

    client = client_of(handler.implementation)
    for i in range(allowed):
        await client.create(pb.CreateRequest(name=f"p{i}"))
    with pytest.raises(Forbidden) as caught:
        await client.create(pb.CreateRequest(name="one too many"))
    assert caught.value.id == "projects.create"
    assert len((await client.list(pb.ListRequest())).projects) == allowed


async def test_events_go_through_the_outbox_and_deleted_customers_lose_their_projects(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    bus = sql_event_bus(engine, poll_interval=0.05)
    parts = await definition.build(
        dependencies("projects", engine, sessions, publisher=bus.publisher)
    )
    for consumer in parts.consumers:
        bus.subscribe(consumer.topic, f"projects-{consumer.topic}", consumer.handle)
    seen: list[projects.Event] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery.decode(projects.Event))

    bus.subscribe(projects.TOPIC, "test-projects", record)
    client = client_of(parts.handlers[0].implementation)
    await bus.start()
    try:
        listed = (await client.list(pb.ListRequest())).projects
        assert list(listed) == [default_project(ANN.id)]
        await bus.wait_idle(timeout=20)
        await bus.publisher.publish(
            customers.TOPIC,
            customers.Event(
                type=customers.EventType.EventTypeDeleted,
                customer=customers.events_pb2.Customer(id=ANN.id),
            ),
        )
        await bus.wait_idle(timeout=20)
        # the consumer's ProjectDeleted is itself an event to deliver
        await bus.wait_idle(timeout=20)
    finally:
        await bus.stop()
    assert [(e.type, e.project_created.id or e.project_deleted.id) for e in seen] == [
        (projects.EventType.EventTypeProjectCreated, ANN.id),
        (projects.EventType.EventTypeProjectDeleted, ANN.id),
    ]
    assert list((await client.list(pb.ListRequest())).projects) == []
    assert await bus.dead_letters() == []
