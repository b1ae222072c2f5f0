"""The customers and projects consumers: deleted, banned, unbanned customers; deleted projects."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.message import Message

from m3o.events import customers, projects
from m3o.events.customers import EventType
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.services.v1.consumers import MAX_ATTEMPTS, CustomerEvents, ProjectEvents
from m3o.services.v1.keys.format import hash_key
from m3o.services.v1.owners import Project
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.view import KeyStatus
from services.v1.support import ADMIN, ANN, BOB, PEPPER, START, World, call


def delivery(topic: str, event: Message) -> Delivery:
    return Delivery(
        id=uuid.uuid4().hex,
        topic=topic,
        type_name="",
        time=START,
        payload=event.SerializeToString(),
    )


def customer_event(kind: customers.EventType.ValueType, customer_id: str) -> Delivery:
    event = customers.Event(
        type=kind, customer=customers.events_pb2.Customer(id=customer_id), caller_id=ADMIN.id
    )
    return delivery(customers.TOPIC, event)


def project_deleted(project_id: str) -> Delivery:
    event = projects.Event(
        type=projects.EventType.EventTypeProjectDeleted,
        project_deleted=projects.events_pb2.ProjectDeleted(id=project_id, billing_account="x"),
    )
    return delivery(projects.TOPIC, event)


def consumer_of(world: World) -> CustomerEvents:
    return CustomerEvents(sessions=world.sessions, changes=world.changes)


async def status_of(world: World, key_id: str) -> tuple[KeyStatus, str]:
    row = await world.row(key_id)
    assert row is not None
    return row.status, row.status_message


def test_the_consumers_take_their_topics_with_retries() -> None:
    consumer = CustomerEvents(sessions=None, changes=None).consumer()  # type: ignore[arg-type]
    assert consumer.topic == "customers"
    assert consumer.max_attempts == MAX_ATTEMPTS
    assert ProjectEvents(sessions=None, changes=None).consumer().topic == "projects"  # type: ignore[arg-type]


async def test_a_deleted_customer_loses_every_key(mirrored_world: World) -> None:
    world = mirrored_world
    first = await world.generate()
    second = await world.generate()
    bobs = await world.generate(account=BOB)
    world.forget_calls()
    await consumer_of(world).handle(customer_event(EventType.EventTypeDeleted, ANN.id))
    assert [row.id for row in await world.all_rows()] == [bobs.api_key_id]
    for response in (first, second):
        assert await world.mirrored(hash_key(response.api_key, PEPPER)) is None
    assert sorted(r.id for r in world.auth.delete.calls) == sorted(
        [first.api_key_id, second.api_key_id]
    )
    events = world.events()
    assert [e.type for e in events] == [EventType.EventTypeDeleteKey] * 2
    assert {e.caller_id for e in events} == {ADMIN.id}
    world.assert_all_in_transaction()


async def test_a_redelivered_deletion_does_nothing_more(world: World) -> None:
    await world.generate()
    consumer = consumer_of(world)
    event = customer_event(EventType.EventTypeDeleted, ANN.id)
    await consumer.handle(event)
    world.forget_calls()
    await consumer.handle(event)
    assert world.events() == []
    assert world.auth.delete.call_count == 0


async def test_a_failed_deletion_raises_and_the_retry_completes(world: World) -> None:
    response = await world.generate()
    consumer = consumer_of(world)
    event = customer_event(EventType.EventTypeDeleted, ANN.id)
    world.auth.delete.returns_once(Unavailable("auth", "down"))
    with pytest.raises(Unavailable):
        await consumer.handle(event)
    assert await world.row(response.api_key_id) is not None
    await consumer.handle(event)
    assert await world.row(response.api_key_id) is None


async def test_a_banned_customers_active_keys_are_blocked(mirrored_world: World) -> None:
    world = mirrored_world
    active = await world.generate()
    blocked = await world.generate()
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=blocked.api_key_id, message="Unpaid"), call("BlockKey", ADMIN)
    )
    bobs = await world.generate(account=BOB)
    world.forget_calls()
    await consumer_of(world).handle(customer_event(EventType.EventTypeBanned, ANN.id))
    assert await status_of(world, active.api_key_id) == (KeyStatus.BLOCKED, "User has been banned")
    assert await status_of(world, blocked.api_key_id) == (KeyStatus.BLOCKED, "Unpaid")
    assert await status_of(world, bobs.api_key_id) == (KeyStatus.ACTIVE, "")
    record = await world.mirrored(hash_key(active.api_key, PEPPER))
    assert record is not None
    assert (record.status, record.status_message) == (KeyStatus.BLOCKED, "User has been banned")
    [event] = world.events()
    assert event.type == EventType.EventTypeBlockKey
    assert event.block_key.id == active.api_key_id
    world.assert_all_in_transaction()


async def test_unbanning_lifts_only_the_ban(mirrored_world: World) -> None:
    world = mirrored_world
    active = await world.generate()
    blocked = await world.generate()
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=blocked.api_key_id, message="Unpaid"), call("BlockKey", ADMIN)
    )
    consumer = consumer_of(world)
    await consumer.handle(customer_event(EventType.EventTypeBanned, ANN.id))
    world.forget_calls()
    await consumer.handle(customer_event(EventType.EventTypeUnbanned, ANN.id))
    assert await status_of(world, active.api_key_id) == (KeyStatus.ACTIVE, "")
    assert await status_of(world, blocked.api_key_id) == (KeyStatus.BLOCKED, "Unpaid")
    record = await world.mirrored(hash_key(active.api_key, PEPPER))
    assert record is not None and record.status is KeyStatus.ACTIVE
    [event] = world.events()
    assert event.type == EventType.EventTypeUnblockKey
    assert event.unblock_key.id == active.api_key_id


async def test_a_redelivered_ban_publishes_nothing_more(world: World) -> None:
    await world.generate()
    consumer = consumer_of(world)
    event = customer_event(EventType.EventTypeBanned, ANN.id)
    await consumer.handle(event)
    world.forget_calls()
    await consumer.handle(event)
    assert world.events() == []


@pytest.mark.parametrize(
    "kind",
    [EventType.EventTypeCreated, EventType.EventTypeLogin, EventType.EventTypeGenerateKey],
)
async def test_other_customer_events_are_ignored(
    world: World, kind: customers.EventType.ValueType
) -> None:
    response = await world.generate()
    world.forget_calls()
    await consumer_of(world).handle(customer_event(kind, ANN.id))
    assert await status_of(world, response.api_key_id) == (KeyStatus.ACTIVE, "")
    assert world.events() == []


async def test_an_event_without_a_customer_is_ignored(world: World) -> None:
    response = await world.generate()
    await consumer_of(world).handle(customer_event(EventType.EventTypeDeleted, ""))
    assert await world.row(response.api_key_id) is not None


async def test_a_deleted_project_loses_its_keys(world: World) -> None:
    world.projects.by_account[ANN.id] = [
        Project(id=ANN.id, billing_account=ANN.id),
        Project(id="team", billing_account=ANN.id),
    ]
    own = await world.generate()
    team = await world.generate(project_id="team")
    world.forget_calls()
    consumer = ProjectEvents(sessions=world.sessions, changes=world.changes)
    await consumer.handle(project_deleted("team"))
    assert await world.row(team.api_key_id) is None
    assert await world.row(own.api_key_id) is not None
    [event] = world.events()
    assert event.delete_key.id == team.api_key_id
    assert event.project_id == "team"


async def test_other_project_events_are_ignored(world: World) -> None:
    response = await world.generate()
    consumer = ProjectEvents(sessions=world.sessions, changes=world.changes)
    created = projects.Event(
        type=projects.EventType.EventTypeProjectCreated,
        project_created=projects.events_pb2.ProjectCreated(id=ANN.id),
    )
    await consumer.handle(delivery(projects.TOPIC, created))
    await consumer.handle(project_deleted(""))
    assert await world.row(response.api_key_id) is not None
