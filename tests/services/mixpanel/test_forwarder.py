"""customers and requests events as Mixpanel receives them, and the ignore list: checked
once per batch, projects looked up once per project, never once per event."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace

import pytest

from m3o.events import customers as customers_events
from m3o.runtime.errors import NotFound, Unavailable
from m3o.runtime.store import SessionFactory
from m3o.services.mixpanel.batcher import Pending
from m3o.services.mixpanel.consumers import YIELD_EVERY
from m3o.services.mixpanel.importer import LocalImporter
from m3o.services.projects.proto import projects_pb2 as projects_pb
from services.mixpanel.support import (
    WHEN,
    MixpanelFake,
    customer_delivery,
    importer,
    make_world,
    request_delivery,
)

_Type = customers_events.EventType
IGNORED = "tester@m3o.test"


async def _all(*handlers: Awaitable[object]) -> None:
    async with asyncio.timeout(20):
        await asyncio.gather(*handlers)


def _names_and_ids(sink: LocalImporter) -> list[tuple[str, str]]:
    return [(e["event"], e["properties"]["distinct_id"]) for b in sink.batches for e in b]


async def test_events_become_mixpanel_events_named_after_topic_and_type(
    sessions: SessionFactory, mixpanel: tuple[MixpanelFake, str]
) -> None:
    fake, url = mixpanel
    real = importer(url)
    world = make_world(sessions, real)
    try:
        await _all(
            world.forwarder.handle_customer(
                customer_delivery(_Type.EventTypeSignup, "ann", "ann@example.com", "evt-signup")
            ),
            world.forwarder.handle_requests([request_delivery("proj-1", "evt-request")]),
        )
    finally:
        await real.close()

    [received] = fake.received
    by_id = {e["properties"]["$insert_id"]: e for e in received.events}
    assert by_id["evt-signup"] == {
        "event": "customers_EventTypeSignup",
        "properties": {
            "distinct_id": "ann",
            "time": int(WHEN.timestamp() * 1000),
            "$insert_id": "evt-signup",
            "data": {
                "type": "EventTypeSignup",
                "customer": {"id": "ann", "email": "ann@example.com"},
            },
        },
    }
    assert by_id["evt-request"]["event"] == "requests_EventTypeRequest"
    assert by_id["evt-request"]["properties"]["distinct_id"] == "proj-1"
    assert by_id["evt-request"]["properties"]["data"]["request"]["api_name"] == "helloworld"
    assert world.projects.read.recorded == []


async def test_a_type_this_build_does_not_know_keeps_the_envelope_name(
    sessions: SessionFactory,
) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink)
    delivery = customer_delivery(_Type.EventTypeLogin, "ann", "ann@example.com")
    await _all(world.forwarder.handle_customer(replace(delivery, type_name="EventTypeBrandNew")))
    assert _names_and_ids(sink) == [("customers_EventTypeBrandNew", "ann")]


async def test_the_local_sink_gets_each_event_without_its_data(sessions: SessionFactory) -> None:
    """Mapping an event to M3O's JSON is most of what forwarding it costs, and the local
    sink only counts events by name: with Mixpanel off, no event is mapped."""
    sink = LocalImporter()
    world = make_world(sessions, sink)
    await _all(
        world.forwarder.handle_customer(
            customer_delivery(_Type.EventTypeSignup, "ann", "ann@example.com", "evt-signup")
        ),
        world.forwarder.handle_requests([request_delivery("proj-1", "evt-request")]),
    )
    events = [e for batch in sink.batches for e in batch]
    assert sorted(e["properties"]["$insert_id"] for e in events) == ["evt-request", "evt-signup"]
    assert all(set(e["properties"]) == {"distinct_id", "time", "$insert_id"} for e in events)


async def test_redelivery_sends_the_same_insert_id(sessions: SessionFactory) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink)
    delivery = request_delivery("proj-1", "evt-1")
    await _all(world.forwarder.handle_requests([delivery]))
    await _all(world.forwarder.handle_requests([delivery]))
    assert [b[0]["properties"]["$insert_id"] for b in sink.batches] == ["evt-1", "evt-1"]
    assert sink.batches[0] == sink.batches[1]


async def test_an_unreadable_request_event_fails_alone(sessions: SessionFactory) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink)
    garbage = replace(request_delivery("proj-1", "bad"), payload=b"\xff\x00")

    failed = await world.forwarder.handle_requests([garbage, request_delivery("proj-1", "ok")])

    assert list(failed) == ["bad"]
    assert [e["properties"]["$insert_id"] for b in sink.batches for e in b] == ["ok"]


async def test_a_large_batch_gives_the_loop_turns_while_it_is_turned_into_events(
    sessions: SessionFactory,
) -> None:
    """The loop serves calls too (``m3o serve``): a backlog's batch of 2,000 events must not
    hold it for the whole of their conversion, before they are handed to the batcher."""
    sink = LocalImporter()
    world = make_world(sessions, sink)
    batch = [request_delivery(f"p{n % 7}", f"evt-{n}") for n in range(2000)]
    batch[1500] = replace(batch[1500], payload=b"\xff\x00")
    turns = 0
    handling = True

    async def count_turns() -> None:
        nonlocal turns
        while handling:
            turns += 1
            await asyncio.sleep(0)

    converted = asyncio.get_running_loop().create_future()
    batcher = world.forwarder._batcher
    submit_many = batcher.submit_many

    async def submitted(items: list[Pending]) -> None:
        converted.set_result(turns)
        await submit_many(items)

    batcher.submit_many = submitted  # type: ignore[method-assign]
    counter = asyncio.create_task(count_turns())
    try:
        async with asyncio.timeout(20):
            failed = await world.forwarder.handle_requests(batch)
    finally:
        handling = False
        await counter

    assert converted.result() >= 2000 // YIELD_EVERY - 1
    assert list(failed) == ["evt-1500"]
    sent = [e["properties"]["$insert_id"] for b in sink.batches for e in b]
    assert sent == [f"evt-{n}" for n in range(2000) if n != 1500]


async def test_ignored_customers_and_their_requests_are_skipped(sessions: SessionFactory) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=[" Tester@M3O.test", ""])
    world.projects.read.returns(
        projects_pb.ReadResponse(project=projects_pb.Project(id="named", billing_account="tester"))
    )
    forwarder = world.forwarder
    await _all(
        forwarder.handle_customer(customer_delivery(_Type.EventTypeSignup, "tester", IGNORED)),
        forwarder.handle_customer(customer_delivery(_Type.EventTypeSignup, "ann", "ann@x.test")),
        forwarder.handle_customer(customer_delivery(_Type.EventTypeSignup, "bob", "")),
    )
    assert sorted(_names_and_ids(sink)) == [
        ("customers_EventTypeSignup", "ann"),
        ("customers_EventTypeSignup", "bob"),
    ]
    sink.batches.clear()

    await _all(
        *(forwarder.handle_requests([request_delivery("tester")]) for _ in range(50)),
        *(forwarder.handle_requests([request_delivery("named")]) for _ in range(50)),
        forwarder.handle_customer(customer_delivery(_Type.EventTypeLogin, "tester", "")),
    )
    assert not sink.batches
    # the default project is the customer's id: no lookup; the named one: one for 50 events
    assert [c.request.id for c in world.projects.read.recorded] == ["named"]

    await _all(*(forwarder.handle_requests([request_delivery("named")]) for _ in range(5)))
    assert len(world.projects.read.recorded) == 1


async def test_requests_of_other_customers_are_looked_up_once_per_project(
    sessions: SessionFactory,
) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=[IGNORED])
    world.projects.read.returns(
        projects_pb.ReadResponse(project=projects_pb.Project(billing_account="ann"))
    )
    await _all(
        *(world.forwarder.handle_requests([request_delivery(f"p{n % 3}")]) for n in range(300)),
    )
    assert sum(len(b) for b in sink.batches) == 300
    assert sorted(c.request.id for c in world.projects.read.recorded) == ["p0", "p1", "p2"]


async def test_an_unknown_project_is_forwarded_and_a_failing_lookup_retried(
    sessions: SessionFactory,
) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=[IGNORED])
    world.projects.read.returns_once(NotFound("projects.read", "Project not found"))
    await _all(world.forwarder.handle_requests([request_delivery("gone")]))
    assert _names_and_ids(sink) == [("requests_EventTypeRequest", "gone")]

    world.projects.read.returns_once(Unavailable("projects.read", "down"))
    with pytest.raises(Unavailable):
        await _all(world.forwarder.handle_requests([request_delivery("other")]))
    assert len(sink.batches) == 1


async def test_a_customer_whose_email_leaves_the_list_is_tracked_again(
    sessions: SessionFactory,
) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=[IGNORED])
    await _all(
        world.forwarder.handle_customer(customer_delivery(_Type.EventTypeSignup, "t", IGNORED))
    )
    assert await world.ignored.among(["t", "x"]) == {"t"}
    await _all(
        world.forwarder.handle_customer(customer_delivery(_Type.EventTypeUpdated, "t", "t@x.test"))
    )
    assert await world.ignored.among(["t"]) == set()
    assert _names_and_ids(sink) == [("customers_EventTypeUpdated", "t")]


async def test_without_an_ignore_list_nothing_is_looked_up(sessions: SessionFactory) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=["", " "])
    await _all(
        world.forwarder.handle_customer(customer_delivery(_Type.EventTypeSignup, "a", "")),
        *(world.forwarder.handle_requests([request_delivery(f"p{n}")]) for n in range(20)),
    )
    assert sum(len(b) for b in sink.batches) == 21
    assert world.projects.read.recorded == []
    assert await world.ignored.among(["a"]) == set()


async def test_a_signup_on_the_list_hides_the_requests_of_its_own_batch(
    sessions: SessionFactory,
) -> None:
    sink = LocalImporter()
    world = make_world(sessions, sink, ignore_list=[IGNORED])
    await _all(
        world.forwarder.handle_customer(
            customer_delivery(_Type.EventTypeSignup, "tester", IGNORED)
        ),
        *(world.forwarder.handle_requests([request_delivery("tester")]) for _ in range(20)),
        world.forwarder.handle_requests([request_delivery("ann")]),
    )
    assert _names_and_ids(sink) == [("requests_EventTypeRequest", "ann")]
    assert [c.request.id for c in world.projects.read.recorded] == ["ann"]


async def test_the_records_follow_the_list_in_bulk(sessions: SessionFactory) -> None:
    world = make_world(sessions, LocalImporter(), ignore_list=[IGNORED])
    many = [f"c{n}" for n in range(1200)]
    await world.ignored.update(ignored=many, tracked=[])
    await world.ignored.update(ignored=many[:10], tracked=many[10:1100])
    assert await world.ignored.among([*many, "other"]) == set(many[:10]) | set(many[1100:])
    await world.ignored.update(ignored=[], tracked=[])
    await world.ignored.update(ignored=[], tracked=many)
    assert await world.ignored.among(many) == set()
