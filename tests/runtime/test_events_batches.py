"""Batch handlers: the events claimed together are handled in one call and acknowledged
together; what fails is retried one by one. Every test runs on the event log (SQLite and
PostgreSQL) and on outbox + Redis Streams (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from m3o.events.customers import Event
from m3o.runtime.events import DeadLettered, Delivery
from m3o.runtime.events._bus import Bus
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events._source import Claim
from m3o.runtime.store import SessionFactory
from runtime.events_fixtures import (  # noqa: F401 - fixtures
    MakeBus,
    engine_fixture,
    eventually,
    make_bus_fixture,
    signup,
)

TOPIC = "customers"
GROUP = "usage-customers"
FAST = {"backoff_base": timedelta(milliseconds=5), "backoff_max": timedelta(milliseconds=20)}


class Batches:
    """A batch handler recording each call; ``fail`` picks the events to report failed,
    ``raises`` makes a call raise."""

    def __init__(
        self,
        fail: Callable[[Delivery], bool] | None = None,
        raises: bool = False,
        started: asyncio.Event | None = None,
        release: asyncio.Event | None = None,
    ) -> None:
        self.calls: list[list[Delivery]] = []
        self.times: list[float] = []
        self.fail = fail or (lambda _delivery: False)
        self.raises = raises
        self.started = started
        self.release = release

    async def __call__(self, deliveries: Sequence[Delivery]) -> Mapping[str, Exception]:
        self.calls.append(list(deliveries))
        self.times.append(time.monotonic())
        if self.started is not None:
            self.started.set()
        if self.release is not None:
            await self.release.wait()
        if self.raises:
            raise RuntimeError("the batch's write failed")
        return {
            d.id: RuntimeError(f"{d.id} failed")
            for d in deliveries
            if d.attempt == 1 and self.fail(d)
        }

    @property
    def ids(self) -> list[str]:
        return [d.id for call in self.calls for d in call]

    def attempts_of(self, event_id: str) -> list[int]:
        return [d.attempt for call in self.calls for d in call if d.id == event_id]


async def test_events_claimed_together_are_one_call_and_each_is_handled_once(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    got = Batches()
    started, release = asyncio.Event(), asyncio.Event()
    first_call = Batches(started=started, release=release)

    async def handler(deliveries: Sequence[Delivery]) -> Mapping[str, Exception]:
        if not first_call.calls:
            await first_call(deliveries)
        return await got(deliveries)

    bus.subscribe_batch(TOPIC, GROUP, handler, max_batch=4)
    await bus.start()

    first = await bus.publisher.publish(TOPIC, signup("c0"))
    await asyncio.wait_for(started.wait(), 10)  # the first batch is held open...
    published = await bus.publisher.publish_many(TOPIC, [signup(f"c{i}") for i in range(1, 11)])
    await asyncio.sleep(0)
    release.set()  # ...while ten more wait, to be claimed at most four at a time
    await bus.wait_idle()

    assert sorted(got.ids) == sorted([first, *published])
    assert max(len(call) for call in got.calls) <= 4
    assert len(got.calls) < 11  # handled together, not one by one
    assert all(d.attempt == 1 for call in got.calls for d in call)


async def test_events_reported_failed_are_retried_alone_and_the_rest_acknowledged(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    got = Batches(fail=lambda d: d.decode(Event).customer.id == "c1")
    bus.subscribe_batch(TOPIC, GROUP, got, **FAST)
    await bus.start()

    c0, c1, c2 = await bus.publisher.publish_many(TOPIC, [signup(f"c{i}") for i in range(3)])
    await bus.wait_idle()

    assert got.attempts_of(c0) == got.attempts_of(c2) == [1]
    assert got.attempts_of(c1) == [1, 2]
    assert [d.id for d in got.calls[-1]] == [c1]  # the retry, alone
    assert await bus.dead_letters() == []


async def test_a_raising_batch_handler_fails_every_event_each_dead_lettered_on_its_own(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    told: list[DeadLettered] = []

    async def hook(dead: DeadLettered) -> None:
        told.append(dead)

    bus.on_dead_letter(hook)
    got = Batches(raises=True)
    bus.subscribe_batch(TOPIC, GROUP, got, max_attempts=2, **FAST)
    await bus.start()

    published = await bus.publisher.publish_many(TOPIC, [signup("c1"), signup("c2")])
    await bus.wait_idle()

    assert {i: got.attempts_of(i) for i in published} == {i: [1, 2] for i in published}
    letters = await bus.dead_letters(group=GROUP)
    assert sorted(letter.event_id for letter in letters) == sorted(published)
    assert all("the batch's write failed" in letter.error for letter in letters)
    assert sorted(dead.event_id for dead in told) == sorted(published)


async def test_a_claim_with_room_lingers_for_events_published_meanwhile(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    got = Batches()
    bus.subscribe_batch(TOPIC, GROUP, got, linger=timedelta(seconds=1.5))
    await bus.start()

    first = await bus.publisher.publish(TOPIC, signup("c1"))
    await asyncio.sleep(0.3)  # published apart: without the linger, two batches
    second = await bus.publisher.publish(TOPIC, signup("c2"))
    await bus.wait_idle(timeout=10)

    assert [sorted(d.id for d in call) for call in got.calls] == [sorted([first, second])]


async def test_stopping_hands_back_a_batch_still_being_handled(make_bus: MakeBus) -> None:
    first_bus = make_bus()
    started = asyncio.Event()
    hangs = Batches(started=started, release=asyncio.Event())
    first_bus.subscribe_batch(TOPIC, GROUP, hangs)
    await first_bus.start()
    published = await first_bus.publisher.publish_many(TOPIC, [signup("c1"), signup("c2")])
    await asyncio.wait_for(started.wait(), 10)
    await first_bus.stop(timeout=0.05)  # the handler is cancelled, nothing acknowledged

    second_bus = make_bus()
    got = Batches()
    second_bus.subscribe_batch(TOPIC, GROUP, got)
    await second_bus.start()
    await eventually(lambda: set(got.ids) == set(published), timeout=10)
    await second_bus.wait_idle()

    assert sorted(got.ids) == sorted(published)  # each handled once more, nothing lost
    handed_back = set(hangs.ids)
    assert handed_back  # the first bus had begun a batch
    for call in got.calls:
        for delivery in call:  # a second attempt for what the first bus had taken
            assert delivery.attempt == (2 if delivery.id in handed_back else 1)


async def test_batch_subscriptions_are_checked(make_bus: MakeBus) -> None:
    bus = make_bus()

    with pytest.raises(ValueError, match="at least 1"):
        bus.subscribe_batch(TOPIC, GROUP, Batches(), max_batch=0)
    with pytest.raises(ValueError, match="negative"):
        bus.subscribe_batch(TOPIC, GROUP, Batches(), linger=timedelta(seconds=-1))
    bus.subscribe_batch(TOPIC, GROUP, Batches())
    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscribe(TOPIC, GROUP, Batches())  # type: ignore[arg-type]


class CopyingChannel:
    """A channel handing out each event twice, in one claim (as a stream can after a
    relay repeated an entry): acknowledgements are recorded."""

    def __init__(self, deliveries: list[Delivery], *, copies_later: bool = False) -> None:
        self.waiting = [Claim(d, f"{d.id}/{n}") for d in deliveries for n in (1, 2)]
        if copies_later:  # every event once, then every event again
            self.waiting.sort(key=lambda claim: claim.receipt.endswith("/2"))
        self.acked: list[str] = []
        self.woken = asyncio.Event()

    async def setup(self, from_beginning: bool) -> None:
        return None

    async def fetch(self, limit: int, wait: float) -> list[Claim]:
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        if not taken:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), wait)
        return taken

    async def ack(self, *claims: Claim) -> None:
        self.acked.extend(claim.receipt for claim in claims)

    async def outstanding(self) -> int:
        return len(self.waiting)

    async def renew(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def wake(self) -> None:
        self.woken.set()


class OneChannel:
    """An event source of one :class:`CopyingChannel`."""

    def __init__(self, channel: CopyingChannel) -> None:
        self._channel = channel

    def channel(self, topic: str, group: str, consumer: str) -> CopyingChannel:
        return self._channel

    async def write(self, session: object, envelopes: object) -> None:
        raise AssertionError("nothing is published here")

    async def backlog(self) -> int:
        return 0

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    async def flush(self) -> None:
        return None

    def wake(self, topic: str) -> None:
        return None


async def through_copying_channel(
    sessions: SessionFactory, count: int, *, copies_later: bool = False, **subscribe: Any
) -> tuple[list[Envelope], CopyingChannel, Batches]:
    """``count`` events, each handed out twice by a :class:`CopyingChannel`, through a
    batch consumer (``subscribe``: its options) until the bus is idle: the events, the
    channel and the handler."""
    events = [Envelope.wrap(TOPIC, signup(f"c{i}")) for i in range(count)]
    channel = CopyingChannel(
        [Delivery(e.id, TOPIC, e.type_name, e.time, e.payload) for e in events],
        copies_later=copies_later,
    )
    bus = Bus(sessions, OneChannel(channel), poll_interval=0.01)  # type: ignore[arg-type]
    got = Batches()
    bus.subscribe_batch(TOPIC, GROUP, got, **subscribe)
    await bus.start()
    try:
        await bus.wait_idle()
    finally:
        await bus.stop()
    return events, channel, got


@pytest.mark.parametrize("engine", [("log", "sqlite")], indirect=True, ids=["fake-channel"])
async def test_a_copy_of_an_event_is_acknowledged_without_reaching_the_handler(
    sessions: SessionFactory,
) -> None:
    events, channel, got = await through_copying_channel(sessions, 3)

    assert sorted(got.ids) == sorted(e.id for e in events)
    assert sorted(channel.acked) == sorted(f"{e.id}/{n}" for e in events for n in (1, 2))


@pytest.mark.parametrize("engine", [("log", "sqlite")], indirect=True, ids=["fake-channel"])
async def test_copies_of_events_handled_in_an_earlier_batch_are_acknowledged_unhandled(
    sessions: SessionFactory,
) -> None:
    events, channel, got = await through_copying_channel(
        sessions, 5, copies_later=True, max_batch=5
    )

    assert [len(call) for call in got.calls] == [5]  # the copies never reached the handler
    assert sorted(channel.acked) == sorted(f"{e.id}/{n}" for e in events for n in (1, 2))
