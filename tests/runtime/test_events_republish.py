"""Publishing an event id again (a gateway recovering a crashed one's served calls) is
harmless on every backend: no error, and consumers get the event once."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.events._outbox import Envelope, EnvelopePublisher
from m3o.runtime.events._relay import Relay
from m3o.runtime.events._stream_publisher import StreamFirstPublisher
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.events.tables import event_log, outbox
from m3o.runtime.store import SessionFactory, transaction
from runtime.events_fixtures import Recorder, signup, unreachable_redis

TOPIC = "customers"
GROUP = "usage-customers"


def _envelope(customer_id: str) -> Envelope:
    return Envelope.wrap(TOPIC, signup(customer_id))


async def _count(sessions: SessionFactory, table: object) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_the_event_log_takes_an_event_id_again_and_delivers_it_once(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    bus = sql_event_bus(engine, poll_interval=0.01)
    got = Recorder()
    bus.subscribe(TOPIC, GROUP, got)
    await bus.start()
    publisher = bus.publisher
    assert isinstance(publisher, EnvelopePublisher)
    first, later = _envelope("c1"), _envelope("c2")
    try:
        await publisher.publish_envelopes([first])
        await bus.wait_idle()
        # Again, alone and with a new event, outside and inside a caller's transaction.
        await publisher.publish_envelopes([first])
        async with transaction(sessions) as session:
            await publisher.publish_envelopes([first, later, first], session=session)
        await bus.wait_idle()
    finally:
        await bus.stop()

    assert got.ids == [first.id, later.id]
    assert await _count(sessions, event_log) == 2


async def test_a_stream_takes_an_event_id_again_and_delivers_it_once(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    got = Recorder()
    bus.subscribe(TOPIC, GROUP, got)
    await bus.start()
    publisher = StreamFirstPublisher(sessions, Relay(sessions, redis))
    first, later = _envelope("c1"), _envelope("c2")
    try:
        await publisher.publish_envelopes([first])
        await publisher.publish_envelopes([first, later])
        await bus.wait_idle()
    finally:
        await bus.stop()

    assert got.ids == [first.id, later.id]


async def test_an_event_id_published_again_while_redis_is_down_waits_once_in_the_outbox(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    first, later = _envelope("c1"), _envelope("c2")
    down = unreachable_redis()
    try:
        unreachable = StreamFirstPublisher(sessions, Relay(sessions, down))
        await unreachable.publish_envelopes([first])
        await unreachable.publish_envelopes([first])
        await unreachable.publish_envelopes([later, first])
    finally:
        await down.aclose()
    assert await _count(sessions, outbox) == 2

    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    got = Recorder()
    bus.subscribe(TOPIC, GROUP, got)
    await bus.start()
    try:
        # And once more with Redis back, the copy in the outbox perhaps already relayed.
        await StreamFirstPublisher(sessions, Relay(sessions, redis)).publish_envelopes([first])
        await bus.wait_idle()
    finally:
        await bus.stop()

    assert sorted(got.ids) == sorted([first.id, later.id])
    assert await _count(sessions, outbox) == 0
