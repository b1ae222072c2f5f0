"""The event bus behaves alike on the local event log and on outbox + Redis Streams.

Every test runs on the event log (SQLite and PostgreSQL) and on outbox + Redis Streams
(PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from m3o.events import projects
from m3o.events.customers import Event
from m3o.runtime.errors import Conflict, NotFound
from m3o.runtime.events import DeadLettered, Delivery
from m3o.runtime.events.redis import RedisChannel
from m3o.runtime.events.sqlite import SqlChannel
from m3o.runtime.store import SessionFactory
from runtime.events_fixtures import (  # noqa: F401 - fixtures
    MakeBus,
    Recorder,
    engine_fixture,
    eventually,
    make_bus_fixture,
    signup,
)

TOPIC = "customers"
FAST = {"backoff_base": timedelta(milliseconds=5), "backoff_max": timedelta(milliseconds=20)}


async def test_published_event_reaches_consumer_with_its_envelope(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", got)
    await bus.start()

    before = datetime.now(UTC)
    event_id = await bus.publisher.publish(TOPIC, signup("c42"))
    await bus.wait_idle()

    [delivery] = got.deliveries
    assert delivery.id == event_id
    assert delivery.topic == TOPIC
    assert delivery.type_name == "EventTypeSignup"
    assert before <= delivery.time <= datetime.now(UTC)
    assert delivery.time.tzinfo is not None
    assert delivery.time.utcoffset() == timedelta(0)
    assert delivery.attempt == 1
    assert delivery.decode(Event) == signup("c42")


async def test_event_published_in_a_transaction_is_delivered_once_committed(
    make_bus: MakeBus, sessions: SessionFactory
) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe(TOPIC, "emails-customers", got)
    await bus.start()

    async with sessions() as session, session.begin():
        event_id = await bus.publisher.publish(TOPIC, signup(), session=session)
        await asyncio.sleep(0.1)
        assert got.deliveries == []
    await bus.wait_idle()

    assert got.ids == [event_id]


async def test_rolled_back_transaction_publishes_nothing(
    make_bus: MakeBus, sessions: SessionFactory
) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe(TOPIC, "emails-customers", got)
    await bus.start()

    with pytest.raises(RuntimeError, match="change failed"):
        async with sessions() as session, session.begin():
            await bus.publisher.publish(TOPIC, signup("rolled-back"), session=session)
            raise RuntimeError("change failed")
    kept = await bus.publisher.publish(TOPIC, signup("kept"))
    await bus.wait_idle()

    assert got.ids == [kept]


async def test_every_group_gets_every_event(make_bus: MakeBus) -> None:
    bus = make_bus()
    mixpanel, emails = Recorder(), Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", mixpanel)
    bus.subscribe(TOPIC, "emails-customers", emails)
    await bus.start()

    published = [await bus.publisher.publish(TOPIC, signup(f"c{i}")) for i in range(5)]
    await bus.wait_idle()

    assert sorted(mixpanel.ids) == sorted(published)
    assert sorted(emails.ids) == sorted(published)


async def test_a_batch_reaches_every_group_whole_and_a_rolled_back_one_not_at_all(
    make_bus: MakeBus, sessions: SessionFactory
) -> None:
    bus = make_bus()
    mixpanel, emails = Recorder(), Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", mixpanel)
    bus.subscribe(TOPIC, "emails-customers", emails)
    await bus.start()

    with pytest.raises(RuntimeError, match="change failed"):
        async with sessions() as session, session.begin():
            await bus.publisher.publish_many(
                TOPIC, [signup("lost-1"), signup("lost-2")], session=session
            )
            raise RuntimeError("change failed")
    async with sessions() as session, session.begin():
        together = await bus.publisher.publish_many(
            TOPIC, [signup(f"c{i}") for i in range(4)], session=session
        )
    alone = await bus.publisher.publish_many(TOPIC, [signup("c4"), signup("c5")])
    assert await bus.publisher.publish_many(TOPIC, []) == []
    await bus.wait_idle()

    published = [*together, *alone]
    assert len(set(published)) == 6
    for group in (mixpanel, emails):
        assert sorted(group.ids) == sorted(published)
        customers = sorted(d.decode(Event).customer.id for d in group.deliveries)
        assert customers == [f"c{i}" for i in range(6)]


async def test_consumers_of_one_group_share_its_events_without_double_handling(
    make_bus: MakeBus,
) -> None:
    first, second = make_bus(), make_bus()
    handled_by_first, handled_by_second = Recorder(), Recorder()

    async def slow_first(delivery: Delivery) -> None:
        await handled_by_first(delivery)
        await asyncio.sleep(0.01)

    async def slow_second(delivery: Delivery) -> None:
        await handled_by_second(delivery)
        await asyncio.sleep(0.01)

    first.subscribe(TOPIC, "usage-customers", slow_first)
    second.subscribe(TOPIC, "usage-customers", slow_second)
    await first.start()
    await second.start()

    published = [await first.publisher.publish(TOPIC, signup(f"c{i}")) for i in range(30)]
    await first.wait_idle()
    await second.wait_idle()

    handled = handled_by_first.ids + handled_by_second.ids
    assert sorted(handled) == sorted(published)  # each exactly once
    assert handled_by_first.ids
    assert handled_by_second.ids


async def test_failing_handler_is_retried_with_growing_backoff(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Recorder(fail=lambda delivery: delivery.attempt < 4)
    bus.subscribe(
        TOPIC,
        "alerts-customers",
        got,
        max_attempts=5,
        backoff_base=timedelta(milliseconds=40),
        backoff_max=timedelta(seconds=1),
    )
    await bus.start()

    await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert got.attempts == [1, 2, 3, 4]
    delays = [later - earlier for earlier, later in zip(got.times, got.times[1:], strict=False)]
    assert delays[0] >= 0.04
    assert delays[1] >= 0.08
    assert delays[2] >= 0.16
    assert delays[0] < delays[1] < delays[2]
    assert await bus.dead_letters() == []


async def test_a_retry_claimed_before_its_failed_attempt_ends_is_handled_not_taken_for_a_copy(
    make_bus: MakeBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = Recorder(fail=lambda delivery: delivery.attempt < 2)
    for channel in (SqlChannel, RedisChannel):

        async def slow_retry(
            self: Any, claim: Any, at: datetime, error: str, _retry: Any = channel.retry
        ) -> None:
            # A retry written slowly (a busy database): it is due, and claimed, while the
            # failed attempt's task has not ended yet.
            await _retry(self, claim, at, error)
            with contextlib.suppress(TimeoutError):
                await eventually(lambda: len(got.deliveries) > 1, timeout=3.0)

        monkeypatch.setattr(channel, "retry", slow_retry)
    bus = make_bus()
    bus.subscribe(TOPIC, "alerts-customers", got, max_attempts=3, concurrency=2, **FAST)
    await bus.start()

    await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert got.attempts == [1, 2]


async def test_backoff_never_exceeds_its_cap(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Recorder(fail=lambda delivery: delivery.attempt < 10)
    bus.subscribe(
        TOPIC,
        "alerts-customers",
        got,
        max_attempts=10,
        backoff_base=timedelta(milliseconds=10),
        backoff_max=timedelta(milliseconds=30),
    )
    await bus.start()

    await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert got.attempts == list(range(1, 11))
    delays = [later - earlier for earlier, later in zip(got.times, got.times[1:], strict=False)]
    assert all(delay >= 0.01 for delay in delays)
    # Uncapped, the waits would double to 1.28 s and 2.56 s before the last two attempts;
    # capped they are 30 ms plus polling, far below that even on a busy machine.
    assert max(delays[-2:]) < 1.2


async def test_event_is_dead_lettered_after_its_last_attempt_and_replays_to_its_group(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    broken = True
    failing = Recorder(fail=lambda _delivery: broken)
    healthy = Recorder()
    bus.subscribe(TOPIC, "mailchimp-customers", failing, max_attempts=3, **FAST)
    bus.subscribe(TOPIC, "mixpanel-customers", healthy)
    await bus.start()

    event_id = await bus.publisher.publish(TOPIC, signup("c7"))
    await bus.wait_idle()

    assert failing.attempts == [1, 2, 3]
    [letter] = await bus.dead_letters()
    assert letter.event_id == event_id
    assert (letter.topic, letter.group) == (TOPIC, "mailchimp-customers")
    assert letter.type_name == "EventTypeSignup"
    assert letter.attempts == 3
    assert "RuntimeError: handler failed on attempt 3" in letter.error
    assert Event.FromString(letter.payload) == signup("c7")
    assert letter.replayed_at is None
    assert await bus.dead_letters(group="mixpanel-customers") == []

    broken = False
    await bus.replay_dead_letter(letter.id)
    await bus.wait_idle()

    assert failing.attempts == [1, 2, 3, 1]
    assert failing.deliveries[-1].id == event_id
    assert failing.deliveries[-1].decode(Event) == signup("c7")
    assert healthy.ids == [event_id]  # only the dead letter's group gets the replay
    assert await bus.dead_letters() == []
    [replayed] = await bus.dead_letters(include_replayed=True)
    assert replayed.replayed_at is not None
    with pytest.raises(Conflict):
        await bus.replay_dead_letter(letter.id)
    with pytest.raises(NotFound):
        await bus.replay_dead_letter("no-such-letter")


async def test_each_dead_letter_is_told_to_the_hooks_once_stored(make_bus: MakeBus) -> None:
    bus = make_bus()
    told: list[DeadLettered] = []

    async def tell(dead: DeadLettered) -> None:
        assert [d.event_id for d in await bus.dead_letters()] == [dead.event_id]  # stored
        told.append(dead)

    async def broken_hook(_dead: DeadLettered) -> None:
        raise RuntimeError("the alerts service is down")

    bus.on_dead_letter(broken_hook)
    bus.on_dead_letter(tell)
    bus.subscribe(
        TOPIC, "mailchimp-customers", Recorder(fail=lambda _d: True), max_attempts=2, **FAST
    )
    bus.subscribe(TOPIC, "mixpanel-customers", Recorder())
    await bus.start()

    event_id = await bus.publisher.publish(TOPIC, signup("c8"))
    await bus.wait_idle()

    assert told == [
        DeadLettered(
            topic=TOPIC,
            group="mailchimp-customers",
            event_id=event_id,
            type_name="EventTypeSignup",
            attempts=2,
            error="RuntimeError('handler failed on attempt 2')",
        )
    ]
    [letter] = await bus.dead_letters()  # a failing hook does not undo the dead letter
    assert letter.event_id == event_id


async def test_dead_letters_filter_by_topic_and_group(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.subscribe(TOPIC, "a-customers", Recorder(fail=lambda _d: True), max_attempts=1)
    bus.subscribe("projects", "a-projects", Recorder(fail=lambda _d: True), max_attempts=1)
    await bus.start()

    await bus.publisher.publish(TOPIC, signup())
    await bus.publisher.publish("projects", signup())
    await bus.wait_idle()

    assert len(await bus.dead_letters()) == 2
    assert [d.group for d in await bus.dead_letters(topic="projects")] == ["a-projects"]
    assert [d.topic for d in await bus.dead_letters(group="a-customers")] == [TOPIC]
    assert len(await bus.dead_letters(limit=1)) == 1


async def test_handler_raising_cancelled_error_is_retried_after_backoff(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    got = Recorder()

    async def cancels_once(delivery: Delivery) -> None:
        await got(delivery)
        if delivery.attempt == 1:
            raise asyncio.CancelledError

    bus.subscribe(
        TOPIC,
        "emails-customers",
        cancels_once,
        backoff_base=timedelta(milliseconds=50),
        backoff_max=timedelta(seconds=1),
    )
    await bus.start()

    await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert got.attempts == [1, 2]
    assert got.times[1] - got.times[0] >= 0.05


async def test_event_of_a_consumer_stopped_mid_handler_goes_to_the_next_consumer(
    make_bus: MakeBus,
) -> None:
    first = make_bus()
    started = asyncio.Event()

    async def hangs(delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    first.subscribe(TOPIC, "usage-customers", hangs)
    await first.start()
    event_id = await first.publisher.publish(TOPIC, signup())
    await asyncio.wait_for(started.wait(), 5)
    await first.stop(timeout=0.05)  # abrupt: the handler is cancelled, nothing acknowledged

    second = make_bus()
    got = Recorder()
    second.subscribe(TOPIC, "usage-customers", got)
    await second.start()
    await second.wait_idle()

    assert got.ids == [event_id]
    assert got.attempts == [2]


async def test_event_delivered_more_often_than_max_attempts_is_dead_lettered_unhandled(
    make_bus: MakeBus,
) -> None:
    first = make_bus()
    started = asyncio.Event()

    async def hangs(delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    first.subscribe(TOPIC, "usage-customers", hangs)
    await first.start()
    await first.publisher.publish(TOPIC, signup())
    await asyncio.wait_for(started.wait(), 5)
    await first.stop(timeout=0.01)

    second = make_bus()
    got = Recorder()
    second.subscribe(TOPIC, "usage-customers", got, max_attempts=1)
    await second.start()
    await second.wait_idle()

    assert got.deliveries == []
    [letter] = await second.dead_letters()
    assert letter.attempts == 2
    assert "without being acknowledged" in letter.error


async def test_graceful_stop_finishes_running_handlers_and_loses_nothing(
    make_bus: MakeBus,
) -> None:
    first = make_bus()
    handled_by_first = Recorder()
    finished: list[str] = []

    async def slow(delivery: Delivery) -> None:
        await handled_by_first(delivery)
        await asyncio.sleep(0.1)
        finished.append(delivery.id)

    first.subscribe(TOPIC, "usage-customers", slow)
    await first.start()
    published = [await first.publisher.publish(TOPIC, signup(f"c{i}")) for i in range(5)]
    await eventually(lambda: bool(handled_by_first.deliveries))
    await first.stop(timeout=5.0)

    assert finished == handled_by_first.ids  # what had started, finished
    second = make_bus()
    handled_by_second = Recorder()
    second.subscribe(TOPIC, "usage-customers", handled_by_second)
    await second.start()
    await second.wait_idle()

    handled = handled_by_first.ids + handled_by_second.ids
    assert sorted(handled) == sorted(published)  # nothing lost, nothing handled twice


async def test_idle_consumer_keeps_consuming(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", got)
    await bus.start()

    await asyncio.sleep(0.3)  # thirty polls with nothing to read
    event_id = await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert got.ids == [event_id]


async def test_events_published_by_another_process_are_consumed(make_bus: MakeBus) -> None:
    consumer, producer = make_bus(), make_bus()
    got = Recorder()
    consumer.subscribe(TOPIC, "mixpanel-customers", got)
    await consumer.start()
    await producer.start()

    event_id = await producer.publisher.publish(TOPIC, signup())
    await eventually(lambda: got.ids == [event_id])


async def test_wait_idle_times_out_while_a_handler_is_stuck(make_bus: MakeBus) -> None:
    bus = make_bus()

    async def hangs(delivery: Delivery) -> None:
        await asyncio.Event().wait()

    bus.subscribe(TOPIC, "usage-customers", hangs)
    await bus.start()
    await bus.publisher.publish(TOPIC, signup())

    with pytest.raises(TimeoutError):
        await bus.wait_idle(timeout=0.2)
    await bus.stop(timeout=0.01)


async def test_concurrency_runs_handlers_of_one_subscription_in_parallel(
    make_bus: MakeBus,
) -> None:
    bus = make_bus()
    running = 0
    most = 0
    four_at_once = asyncio.Event()

    async def slow(delivery: Delivery) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 4:
            four_at_once.set()
        try:
            # The first four wait for each other: only handlers run in parallel get here
            # together; later ones find the event already set.
            await asyncio.wait_for(four_at_once.wait(), timeout=30)
        finally:
            running -= 1

    bus.subscribe(TOPIC, "usage-customers", slow, concurrency=4)
    await bus.start()
    for i in range(8):
        await bus.publisher.publish(TOPIC, signup(f"c{i}"))
    await bus.wait_idle()

    assert four_at_once.is_set()
    assert most == 4  # four at a time, never more


async def test_new_group_starts_at_new_events_unless_asked_for_the_history(
    make_bus: MakeBus,
) -> None:
    producer = make_bus()
    await producer.start()
    old = await producer.publisher.publish(TOPIC, signup("old"))
    await producer.wait_idle()

    bus = make_bus()
    latest, everything = Recorder(), Recorder()
    bus.subscribe(TOPIC, "new-customers", latest)
    bus.subscribe(TOPIC, "replay-customers", everything, from_beginning=True)
    await bus.start()
    new = await bus.publisher.publish(TOPIC, signup("new"))
    await bus.wait_idle()

    assert latest.ids == [new]
    assert sorted(everything.ids) == sorted([old, new])


async def test_subscriptions_are_checked(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe(TOPIC, "emails-customers", got)

    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscribe(TOPIC, "emails-customers", got)
    with pytest.raises(ValueError, match="invalid event group"):
        bus.subscribe(TOPIC, "bad group", got)
    with pytest.raises(ValueError, match="max_attempts"):
        bus.subscribe(TOPIC, "other", got, max_attempts=0)
    await bus.start()
    with pytest.raises(RuntimeError):
        bus.subscribe(TOPIC, "late-customers", got)
    with pytest.raises(ValueError, match="invalid event topic"):
        await bus.publisher.publish("bad topic", signup())


def test_a_delivery_carrying_its_message_decodes_other_types_from_the_payload() -> None:
    event = signup("c-1")
    carried = Delivery(
        id="e-1",
        topic="customers",
        type_name="EventTypeSignup",
        time=datetime.now(UTC),
        payload=event.SerializeToString(),
        message=event,
    )
    assert carried.decode(Event) is event
    as_projects = carried.decode(projects.Event)  # the same bytes read as another message
    assert as_projects == projects.Event.FromString(event.SerializeToString())
    assert carried == dataclasses.replace(carried, message=None)  # not part of its value
