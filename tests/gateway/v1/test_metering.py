"""requests/Request events: batched, retried without duplicates, flushed on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from google.protobuf.message import Message

from m3o.events.requests import TOPIC, EventType, Request
from m3o.gateway.v1.metering import RequestLog
from m3o.runtime.errors import Unavailable
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory


def _request(n: int) -> Request:
    return Request(api_key_id=f"key-{n}", api_name="helloworld", price="free")


class FlakyPublisher(FakePublisher):
    """Fails the ``fail_at``-th batch once."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self._calls = 0
        self._fail_at = fail_at

    async def publish_many(
        self, topic: str, events: Sequence[Message], *, session: object | None = None
    ) -> list[str]:
        self._calls += 1
        if self._calls == self._fail_at:
            raise Unavailable("events", "down")
        return await super().publish_many(topic, events, session=session)


async def test_a_batch_is_published_in_one_transaction(sessions: SessionFactory) -> None:
    publisher = FakePublisher()
    log = RequestLog(publisher, sessions, max_batch=10)
    for n in range(25):
        log.record(_request(n))
    assert await log.flush()
    assert [p.topic for p in publisher.published] == [TOPIC] * 25
    assert all(p.in_transaction for p in publisher.published)
    events = publisher.events(TOPIC)
    assert [e.request.api_key_id for e in events] == [f"key-{n}" for n in range(25)]  # type: ignore[attr-defined]
    assert all(e.type == EventType.EventTypeRequest for e in events)  # type: ignore[attr-defined]


async def test_a_failed_batch_stays_whole_and_is_retried_without_duplicates() -> None:
    publisher = FlakyPublisher(fail_at=2)
    log = RequestLog(publisher, max_batch=2)
    for n in range(5):
        log.record(_request(n))
    assert not await log.flush()  # the first batch went out, the second failed
    assert log.pending == 3
    assert await log.flush()
    keys = [e.request.api_key_id for e in publisher.events(TOPIC)]  # type: ignore[attr-defined]
    assert keys == [f"key-{n}" for n in range(5)]


async def test_the_background_task_publishes_and_stop_flushes_the_rest() -> None:
    publisher = FakePublisher()
    log = RequestLog(publisher, interval=timedelta(milliseconds=10))
    await log.start()
    log.record(_request(1))
    for _ in range(100):
        if publisher.published:
            break
        await asyncio.sleep(0.01)
    assert len(publisher.published) == 1
    log.record(_request(2))
    await log.stop()
    assert len(publisher.published) == 2
    assert log.pending == 0


async def test_past_the_buffer_limit_new_events_are_dropped() -> None:
    publisher = FakePublisher()
    log = RequestLog(publisher, max_buffered=2)
    for n in range(4):
        log.record(_request(n))
    assert log.pending == 2
    await log.flush()
    assert [e.request.api_key_id for e in publisher.events(TOPIC)] == ["key-0", "key-1"]  # type: ignore[attr-defined]
