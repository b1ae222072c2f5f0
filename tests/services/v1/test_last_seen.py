"""last_seen from requests/Request events: batched, forward only, nothing else written."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from m3o.events import requests
from m3o.runtime import store
from m3o.runtime.events import Delivery
from m3o.runtime.store import inline_sqlite
from m3o.services.v1.last_seen import MAX_BATCH, LastSeen
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


class CountingTransactions:
    """Counts the transactions opened through the store's ``transaction`` or (SQLite) the
    driver's ``driver_transaction``, which :class:`LastSeen`'s write goes through, and
    makes them fail while ``fail`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = 0
        self.fail = False
        for module, name in ((store, "transaction"), (inline_sqlite, "driver_transaction")):
            monkeypatch.setattr(module, name, self._counting(getattr(module, name)))

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @contextlib.asynccontextmanager
        async def counting(*args: Any) -> AsyncIterator[Any]:
            self.opened += 1
            if self.fail:
                raise ConnectionError("database down")
            async with original(*args) as inner:
                yield inner

        return counting


async def last_seen_of(world: World, key_id: str) -> datetime | None:
    row = await world.row(key_id)
    assert row is not None
    return row.last_seen


async def test_an_event_sets_last_seen_before_the_handler_returns(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions)
    await consumer.handle([request_event(key.api_key_id, START + timedelta(hours=1))])
    assert await last_seen_of(world, key.api_key_id) == START + timedelta(hours=1)
    [listed] = (await world.handler.list_keys(pb.ListRequest(), call("ListKeys"))).api_keys
    assert listed.last_seen == int((START + timedelta(hours=1)).timestamp())


async def test_last_seen_never_moves_back(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions)
    late = START + timedelta(hours=2)
    await consumer.handle([request_event(key.api_key_id, late)])
    await consumer.handle([request_event(key.api_key_id, START + timedelta(hours=1))])
    assert await last_seen_of(world, key.api_key_id) == late


async def test_last_seen_leaves_a_block_alone(world: World) -> None:
    key = await world.generate()
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=key.api_key_id, message="Unpaid"), call("BlockKey", ADMIN)
    )
    consumer = LastSeen(sessions=world.sessions)
    await consumer.handle([request_event(key.api_key_id, START + timedelta(hours=1))])
    row = await world.row(key.api_key_id)
    assert row is not None
    assert (row.status, row.status_message) == (KeyStatus.BLOCKED, "Unpaid")
    assert row.last_seen == START + timedelta(hours=1)


async def test_a_batch_is_written_in_one_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await world.generate()
    second = await world.generate()
    counting = CountingTransactions(monkeypatch)
    consumer = LastSeen(sessions=world.sessions)
    events = [
        request_event(first.api_key_id, START + timedelta(minutes=1)),
        request_event(first.api_key_id, START + timedelta(minutes=3)),
        request_event(second.api_key_id, START + timedelta(minutes=2)),
        request_event(first.api_key_id, START + timedelta(minutes=2)),
    ]
    assert await consumer.handle(events) == {}
    assert counting.opened == 1
    assert await last_seen_of(world, first.api_key_id) == START + timedelta(minutes=3)
    assert await last_seen_of(world, second.api_key_id) == START + timedelta(minutes=2)


async def test_a_failed_write_fails_the_batch_and_its_retry_writes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await world.generate()
    counting = CountingTransactions(monkeypatch)
    counting.fail = True
    consumer = LastSeen(sessions=world.sessions)
    batch = [request_event(key.api_key_id), request_event(key.api_key_id)]
    with pytest.raises(ConnectionError):
        await consumer.handle(batch)
    assert await last_seen_of(world, key.api_key_id) is None
    counting.fail = False
    await consumer.handle(batch[:1])  # the retry
    assert await last_seen_of(world, key.api_key_id) == START


async def test_an_unreadable_event_fails_alone(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions)
    garbage = Delivery(
        id="bad", topic=requests.TOPIC, type_name="", time=START, payload=b"\xff\x00"
    )
    failed = await consumer.handle([garbage, request_event(key.api_key_id)])
    assert list(failed) == ["bad"]
    assert await last_seen_of(world, key.api_key_id) == START


async def test_events_without_a_key_and_unknown_keys_are_harmless(world: World) -> None:
    key = await world.generate()
    consumer = LastSeen(sessions=world.sessions)
    other = requests.Event(type=requests.EventType.EventTypeUnknown)
    unknown = Delivery(
        id="x", topic=requests.TOPIC, type_name="", time=START, payload=other.SerializeToString()
    )
    failed = await consumer.handle([request_event(""), request_event("no-such-key"), unknown])
    assert failed == {}
    assert await last_seen_of(world, key.api_key_id) is None


def test_the_consumer_takes_requests_many_at_a_time() -> None:
    consumer = LastSeen(sessions=None).consumer()  # type: ignore[arg-type]
    assert consumer.topic == "requests"
    assert consumer.max_batch == MAX_BATCH > 1
