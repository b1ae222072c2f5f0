"""The service definition: its parts, its handler served behind the dispatcher, and its
request consumer fed by the real event bus."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.requests import TOPIC as REQUESTS
from m3o.events.requests import Event, EventType, Request
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unauthorized
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.store import SessionFactory
from m3o.services.usage.handler import Usage
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.proto.client import SPEC, UsageClient
from m3o.services.usage.service import definition
from m3o.services.usage.tables import metadata
from services.usage.support import ADMIN, START, call, make_world
from support.services import AnonymousRefused, MovableClock, dependencies, serve


async def test_definition_builds_a_public_ranking_two_consumers_and_three_crons(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "usage"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    deps = dependencies("usage", engine, sessions, {"usage": {"history_retention": "90d"}})
    parts = await definition.build(deps)
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Usage)
    assert handler.public == frozenset({"ListAPIRanks"})
    assert sorted((c.topic, type(c).__name__) for c in parts.consumers) == [
        ("customers", "Consumer"),
        ("projects", "Consumer"),
        ("requests", "BatchConsumer"),  # counted many in one transaction
    ]
    assert {(c.name, c.every, c.at_start) for c in parts.crons} == {
        ("ranks", timedelta(days=1), True),
        ("sweep", timedelta(hours=1), True),
        ("retention", timedelta(days=1), False),
    }

    local = serve(SPEC, handler.implementation, rules=AnonymousRefused(), public=handler.public)
    usage = UsageClient(local)
    assert await usage.list_api_ranks(pb.ListAPIRanksRequest()) == pb.ListAPIRanksResponse()
    with pytest.raises(Unauthorized):
        await usage.read(pb.ReadRequest(customer_id="proj-1"))


async def test_request_events_through_the_event_bus_are_counted_once(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    clock = MovableClock(START)
    world = make_world(sessions, SqlCounterStore(engine, now=clock), clock=clock)
    consumer = world.recorder.consumer()
    bus = sql_event_bus(engine, poll_interval=0.05)
    consumer.subscribe(bus, "usage")
    await bus.start()
    try:
        for i in range(30):
            event = Event(
                type=EventType.EventTypeRequest,
                request=Request(
                    project_id=f"proj-{i % 2}",
                    user_id=f"proj-{i % 2}",
                    api_name="helloworld",
                    endpoint_name="Helloworld.Call",
                    price="free",
                ),
            )
            await bus.publisher.publish(REQUESTS, event)
        await bus.wait_idle(timeout=20)
    finally:
        await bus.stop()

    # The bus stamps events with the real time: whatever the day, it is one day's series.
    read = await world.handler.read(pb.ReadRequest(customer_id="proj-0"), call("Read", ADMIN))
    [series] = read.usage.values()
    assert sum(record.requests for record in series.records) == 15
