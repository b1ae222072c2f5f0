"""Events of what already happened go straight to their stream; the outbox when Redis is
down, and no event reaches a stream twice."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import Event
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events._relay import Relay
from m3o.runtime.events._stream_publisher import StreamFirstPublisher
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.tables import outbox
from m3o.runtime.logging.tracing import current_traceparent, server_span
from m3o.runtime.store import SessionFactory, transaction
from runtime.events_fixtures import Recorder, signup, unreachable_redis

TOPIC = "customers"
STREAM = b"m3o:events:customers"


async def _outbox_rows(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(outbox)) or 0)


async def _consumed(engine: AsyncEngine, redis: aioredis.Redis) -> Recorder:
    """What a consumer group created now receives, once the bus is idle."""
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    got = Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", got)
    await bus.start()
    await bus.wait_idle()
    await bus.stop()
    return got


async def test_events_reach_consumers_through_the_stream_without_the_outbox(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    got = Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", got)
    await bus.start()
    publisher = StreamFirstPublisher(sessions, Relay(sessions, redis))

    ids = await publisher.publish_many(TOPIC, [signup("c1"), signup("c2"), signup("c3")])
    single = await publisher.publish(TOPIC, signup("c4"))
    assert await publisher.publish_many(TOPIC, []) == []
    assert await _outbox_rows(sessions) == 0
    await bus.wait_idle()
    await bus.stop()

    assert got.ids == [*ids, single]
    assert [d.decode(Event).customer.id for d in got.deliveries] == ["c1", "c2", "c3", "c4"]
    assert [d.type_name for d in got.deliveries] == ["EventTypeSignup"] * 4


async def test_with_redis_down_the_events_wait_in_the_outbox_and_are_delivered_once(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    down = unreachable_redis()
    try:
        ids = await StreamFirstPublisher(sessions, Relay(sessions, down)).publish_many(
            TOPIC, [signup("c1"), signup("c2")]
        )
    finally:
        await down.aclose()
    assert await _outbox_rows(sessions) == 2
    assert await redis.xlen(STREAM) == 0

    got = await _consumed(engine, redis)

    assert got.ids == ids
    assert await _outbox_rows(sessions) == 0


async def test_an_event_appended_before_a_failure_is_not_appended_again_from_the_outbox(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    relay = Relay(sessions, redis)
    envelopes = [Envelope.wrap(TOPIC, signup(f"c{n}")) for n in range(3)]
    await relay.append_now(envelopes[:2])  # these made it, but the caller saw a failure
    async with transaction(sessions) as session:
        await relay.write_unsent(session, envelopes)
    await relay.flush()

    entries = await redis.xrange(STREAM)
    assert [fields[b"id"].decode() for _, fields in entries] == [e.id for e in envelopes]
    assert await _outbox_rows(sessions) == 0


async def test_an_event_appended_again_is_not_appended_twice_in_one_batch_or_two(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    # As a gateway recovering a crashed one publishes its events again; the events'
    # times fall in two different minutes, so their markers are in two hashes.
    relay = Relay(sessions, redis)
    envelopes = [Envelope.wrap(TOPIC, signup(f"c{n}")) for n in range(4)]
    envelopes[1] = dataclasses.replace(envelopes[1], time=envelopes[1].time - timedelta(minutes=3))
    await relay.append_now(envelopes[:2])
    await relay.append_now([envelopes[1], envelopes[2], envelopes[2], *envelopes])
    async with transaction(sessions) as session:
        await relay.write_unsent(session, envelopes[1:])
    await relay.flush()

    entries = await redis.xrange(STREAM)
    assert [fields[b"id"].decode() for _, fields in entries] == [e.id for e in envelopes]
    assert await _outbox_rows(sessions) == 0


async def test_in_a_transaction_events_go_with_it(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    publisher = StreamFirstPublisher(sessions, Relay(sessions, redis))
    with pytest.raises(RuntimeError, match="change failed"):
        async with transaction(sessions) as session:
            await publisher.publish(TOPIC, signup("rolled-back"), session=session)
            raise RuntimeError("change failed")
    async with transaction(sessions) as session:
        await publisher.publish(TOPIC, signup("kept"), session=session)

    assert await _outbox_rows(sessions) == 1
    assert await redis.xlen(STREAM) == 0


async def test_spilled_events_wait_in_the_outbox_even_with_redis_up_and_are_delivered_once(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    publisher = StreamFirstPublisher(sessions, Relay(sessions, redis))
    envelopes = [Envelope.wrap(TOPIC, signup(f"c{n}")) for n in range(3)]
    await publisher.spill(envelopes)
    await publisher.spill(envelopes[1:])  # spilled again while waiting: kept once
    assert await redis.xlen(STREAM) == 0
    assert await publisher.waiting(TOPIC) == 3
    assert await publisher.waiting("other") == 0

    got = await _consumed(engine, redis)

    assert got.ids == [e.id for e in envelopes]
    assert await publisher.waiting(TOPIC) == 0


async def test_a_spilled_event_already_appended_is_not_appended_again(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    relay = Relay(sessions, redis)
    publisher = StreamFirstPublisher(sessions, relay)
    envelopes = [Envelope.wrap(TOPIC, signup(f"c{n}")) for n in range(2)]
    await relay.append_now(envelopes[:1])  # appended, but the caller saw a failure
    await publisher.spill(envelopes)
    await relay.flush()

    entries = await redis.xrange(STREAM)
    assert [fields[b"id"].decode() for _, fields in entries] == [e.id for e in envelopes]


async def test_the_publishing_spans_trace_context_reaches_the_consumer_both_ways(
    engine: AsyncEngine,
    sessions: SessionFactory,
    redis: aioredis.Redis,
    spans: InMemorySpanExporter,
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    got = Recorder()
    # Both events are published before the bus starts (its group reads the stream from the
    # beginning): a running bus's relay could move the waiting one before it is counted.
    bus.subscribe(TOPIC, "mixpanel-customers", got, from_beginning=True)
    with server_span("publishing call", {}, {}):
        sent = current_traceparent()
        direct = await StreamFirstPublisher(sessions, Relay(sessions, redis)).publish(
            TOPIC, signup("c1")
        )
        down = unreachable_redis()
        try:
            waited = await StreamFirstPublisher(sessions, Relay(sessions, down)).publish(
                TOPIC, signup("c2")
            )
        finally:
            await down.aclose()
    assert sent
    assert await _outbox_rows(sessions) == 1
    await bus.start()
    await bus.wait_idle()
    await bus.stop()

    assert {d.id: d.traceparent for d in got.deliveries} == {direct: sent, waited: sent}
