"""requests/Request events: batched, retried without duplicates, flushed on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

from google.protobuf.message import Message

from gateway.v1.support import Alerts
from m3o.events.requests import TOPIC, Event, EventType, Request
from m3o.gateway.v1.metering import RequestLog
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Envelope
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


class DownPublisher(FakePublisher):
    """Fails every publish while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def publish_many(
        self, topic: str, events: Sequence[Message], *, session: object | None = None
    ) -> list[str]:
        if self.down:
            raise Unavailable("events", "down")
        return await super().publish_many(topic, events, session=session)


class RecordingSpill:
    """Durable storage that keeps what it was given, or fails while ``failing``."""

    def __init__(self) -> None:
        self.writes: list[list[Envelope]] = []
        self.failing = False
        self.written = asyncio.Event()

    async def spill(self, envelopes: Sequence[Envelope]) -> None:
        if self.failing:
            raise Unavailable("outbox", "down")
        self.writes.append(list(envelopes))
        self.written.set()

    async def waiting(self, topic: str) -> int:
        return sum(len(write) for write in self.writes)

    @property
    def keys(self) -> list[str]:
        return [_key(e) for write in self.writes for e in write]


def _key(envelope: Envelope) -> str:
    return Event.FromString(envelope.payload).request.api_key_id


async def _until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(30):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_past_the_buffer_limit_the_newest_events_are_spilled_not_dropped() -> None:
    publisher = DownPublisher()
    spill = RecordingSpill()
    alerts = Alerts()
    log = RequestLog(
        publisher, max_buffered=100, max_batch=10, spill=spill, spill_batch=20, alerts=alerts
    )
    await log.start()
    try:
        for n in range(1000):
            log.record(_request(n))
        await _until(lambda: log.pending <= 100, "the buffer back under its bound")
        assert log.spilled == 1000 - log.pending
        assert len(spill.keys) == log.spilled
        assert all(len(write) <= 20 for write in spill.writes)
        publisher.down = False
        assert await log.flush()
    finally:
        await log.stop()
    published = [e.request.api_key_id for e in publisher.events(TOPIC)]  # type: ignore[attr-defined]
    assert sorted(published + spill.keys) == sorted(f"key-{n}" for n in range(1000))
    assert published == [f"key-{n}" for n in range(len(published))]  # the oldest stayed
    assert [(c, a) for c, a, _, _ in alerts.reported] == [("events", "request_events_spilled")]
    assert log.spill_backlog == len(spill.keys)


async def test_under_the_buffer_limit_nothing_is_spilled() -> None:
    publisher = DownPublisher()
    spill = RecordingSpill()
    log = RequestLog(publisher, max_buffered=100, spill=spill)
    await log.start()
    try:
        for n in range(100):
            log.record(_request(n))
        assert not await log.flush()  # the publisher is down: all kept in memory
        assert log.pending == 100
        assert spill.writes == []
        publisher.down = False
        assert await log.flush()
    finally:
        await log.stop()
    assert len(publisher.events(TOPIC)) == 100
    assert log.spilled == 0


async def test_a_failing_spill_keeps_the_events_in_memory_and_is_tried_again() -> None:
    publisher = DownPublisher()
    spill = RecordingSpill()
    spill.failing = True
    alerts = Alerts()
    log = RequestLog(publisher, max_buffered=10, spill=spill, alerts=alerts)
    await log.start()
    try:
        for n in range(50):
            log.record(_request(n))
        await _until(lambda: log.spill_failures >= 2, "the spill tried twice")
        assert log.pending == 50
        assert log.spilled == 0
        spill.failing = False
        await _until(lambda: log.pending <= 10, "the spill done")
        assert len(spill.keys) == log.spilled == 45  # down to half the buffer
        publisher.down = False
    finally:
        await log.stop()
    assert len(publisher.events(TOPIC)) == 5
    actions = [a for _, a, _, _ in alerts.reported]
    assert actions == ["request_events_spill_failed", "request_events_spilled"]


async def test_stop_spills_what_it_could_not_publish() -> None:
    publisher = DownPublisher()
    spill = RecordingSpill()
    log = RequestLog(publisher, spill=spill)
    for n in range(3):
        log.record(_request(n))
    await log.stop()
    assert spill.keys == ["key-0", "key-1", "key-2"]
    assert log.pending == 0


async def test_without_a_spill_the_publisher_itself_takes_the_overflow() -> None:
    publisher = FakePublisher()
    log = RequestLog(publisher, max_buffered=4)
    await log.start()
    try:
        for n in range(20):
            log.record(_request(n))
        await _until(lambda: log.pending <= 4, "the buffer back under its bound")
    finally:
        await log.stop()
    keys = [e.request.api_key_id for e in publisher.events(TOPIC)]  # type: ignore[attr-defined]
    assert sorted(keys) == sorted(f"key-{n}" for n in range(20))


class GatedPublisher(FakePublisher):
    """Holds every publish until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def publish_many(
        self, topic: str, events: Sequence[Message], *, session: object | None = None
    ) -> list[str]:
        self.entered.set()
        await self.gate.wait()
        return await super().publish_many(topic, events, session=session)


async def test_events_being_published_are_never_spilled_too() -> None:
    publisher = GatedPublisher()
    spill = RecordingSpill()
    log = RequestLog(
        publisher, max_buffered=20, max_batch=10, spill=spill, spill_batch=7,
        interval=timedelta(milliseconds=1),
    )  # fmt: skip
    await log.start()
    try:
        for n in range(10):
            log.record(_request(n))
        await publisher.entered.wait()  # the first ten are being published
        for n in range(10, 200):
            log.record(_request(n))
        await _until(lambda: log.pending <= 20, "the buffer back under its bound")
        flushed = asyncio.create_task(log.flush())  # waits for the publish under way
        publisher.gate.set()
        assert await flushed
    finally:
        await log.stop()
    published = [e.request.api_key_id for e in publisher.events(TOPIC)]  # type: ignore[attr-defined]
    assert published[:10] == [f"key-{n}" for n in range(10)]
    everything = published + spill.keys
    assert sorted(everything) == sorted(f"key-{n}" for n in range(200))  # each exactly once
