"""last_seen from requests/Request events: batched, forward only, nothing else written."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events import requests
from m3o.runtime.events import Delivery
from m3o.runtime.store import SessionFactory
from m3o.services.v1.last_seen import CONCURRENCY, LastSeen
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.view import KeyStatus
from services.v1.support import ADMIN, START, World, call


def request_event(key_id: str, when: datetime = START) -> Delivery:
    event = requests.Event(
        type=requests.EventType.EventTypeRequest,
        request=requests.Request(api_key_id=key_id, api_name="helloworld", price="free"),
    )
    return Delivery(
        id=uuid.uuid4().hex,
        topic=requests.TOPIC,
        type_name="EventTypeRequest",
        time=when,
        payload=event.SerializeToString(),
    )


class CountingSessions:
    """A session factory counting the sessions opened (one per transaction)."""

    def __init__(self, inner: SessionFactory) -> None:
        self.inner = inner
        self.opened = 0
        self.fail = False

    def __call__(self) -> AsyncSession:
        self.opened += 1
        if self.fail:
            raise ConnectionError("database down")
        return self.inner()


async def last_seen_of(world: World, key_id: str) -> datetime | None:
    row = await world.row(key_id)
    assert row is not None
    return row.last_seen


async def test_an_event_sets_last_seen_before_the_handler_returns(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=0.01)
    await consumer.handle(request_event(key.api_key_id, START + timedelta(hours=1)))
    assert await last_seen_of(world, key.api_key_id) == START + timedelta(hours=1)
    [listed] = (await world.handler.list_keys(pb.ListRequest(), call("ListKeys"))).api_keys
    assert listed.last_seen == int((START + timedelta(hours=1)).timestamp())


async def test_last_seen_never_moves_back(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=0.01)
    late = START + timedelta(hours=2)
    await consumer.handle(request_event(key.api_key_id, late))
    await consumer.handle(request_event(key.api_key_id, START + timedelta(hours=1)))
    assert await last_seen_of(world, key.api_key_id) == late


async def test_last_seen_leaves_a_block_alone(world: World) -> None:
    key = await world.generate()
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=key.api_key_id, message="Unpaid"), call("BlockKey", ADMIN)
    )
    consumer = LastSeen(sessions=world.sessions, linger=0.01)
    await consumer.handle(request_event(key.api_key_id, START + timedelta(hours=1)))
    row = await world.row(key.api_key_id)
    assert row is not None
    assert (row.status, row.status_message) == (KeyStatus.BLOCKED, "Unpaid")
    assert row.last_seen == START + timedelta(hours=1)


async def test_events_handled_together_are_written_in_one_transaction(world: World) -> None:
    first = await world.generate()
    second = await world.generate()
    counting = CountingSessions(world.sessions)
    consumer = LastSeen(sessions=counting, linger=0.05)  # type: ignore[arg-type]
    events = [
        request_event(first.api_key_id, START + timedelta(minutes=1)),
        request_event(first.api_key_id, START + timedelta(minutes=3)),
        request_event(second.api_key_id, START + timedelta(minutes=2)),
        request_event(first.api_key_id, START + timedelta(minutes=2)),
    ]
    await asyncio.gather(*(consumer.handle(event) for event in events))
    assert counting.opened == 1
    assert await last_seen_of(world, first.api_key_id) == START + timedelta(minutes=3)
    assert await last_seen_of(world, second.api_key_id) == START + timedelta(minutes=2)


async def test_a_full_batch_is_written_without_waiting(world: World) -> None:
    first = await world.generate()
    second = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=60, max_batch=2)
    async with asyncio.timeout(5):
        await asyncio.gather(
            consumer.handle(request_event(first.api_key_id)),
            consumer.handle(request_event(second.api_key_id)),
        )
    assert await last_seen_of(world, second.api_key_id) == START


async def test_a_failed_write_fails_every_event_of_the_batch(world: World) -> None:
    key = await world.generate()
    counting = CountingSessions(world.sessions)
    counting.fail = True
    consumer = LastSeen(sessions=counting, linger=0.01)  # type: ignore[arg-type]
    results = await asyncio.gather(
        consumer.handle(request_event(key.api_key_id)),
        consumer.handle(request_event(key.api_key_id)),
        return_exceptions=True,
    )
    assert all(isinstance(result, ConnectionError) for result in results)
    assert await last_seen_of(world, key.api_key_id) is None
    counting.fail = False
    await consumer.handle(request_event(key.api_key_id))  # the retry
    assert await last_seen_of(world, key.api_key_id) == START


async def test_a_cancelled_handler_does_not_cancel_its_batch(world: World) -> None:
    first = await world.generate()
    second = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=0.05)
    cancelled = asyncio.create_task(consumer.handle(request_event(first.api_key_id)))
    await asyncio.sleep(0)
    kept = asyncio.create_task(consumer.handle(request_event(second.api_key_id)))
    await asyncio.sleep(0)
    cancelled.cancel()
    await kept
    assert await last_seen_of(world, first.api_key_id) == START
    assert await last_seen_of(world, second.api_key_id) == START
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_flush_writes_the_open_batch_at_once(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=60)
    waiting = asyncio.create_task(consumer.handle(request_event(key.api_key_id)))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await consumer.flush()
        await waiting
    assert await last_seen_of(world, key.api_key_id) == START


async def test_events_without_a_key_and_unknown_keys_are_harmless(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions, linger=0.01)
    await consumer.handle(request_event(""))
    await consumer.handle(request_event("no-such-key"))
    other = requests.Event(type=requests.EventType.EventTypeUnknown)
    await consumer.handle(
        Delivery(
            id="x",
            topic=requests.TOPIC,
            type_name="",
            time=START,
            payload=other.SerializeToString(),
        )
    )
    assert await last_seen_of(world, key.api_key_id) is None


def test_the_consumer_takes_requests_many_at_a_time() -> None:
    consumer = LastSeen(sessions=None).consumer()  # type: ignore[arg-type]
    assert consumer.topic == "requests"
    assert consumer.concurrency == CONCURRENCY > 1
