"""The platform backend: outbox relayed to Redis Streams, and Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import Event
from m3o.runtime.events._relay import Relay
from m3o.runtime.events._stream_publisher import StreamFirstPublisher
from m3o.runtime.events.redis import RedisEventSource, redis_event_bus
from m3o.runtime.events.tables import outbox
from m3o.runtime.store import SessionFactory, transaction
from runtime.events_fixtures import Recorder, eventually, signup
from support.backends import REDIS_URL

TOPIC = "customers"
STREAM = "m3o:events:customers"


async def test_relay_appends_the_envelope_to_the_topic_stream_and_empties_the_outbox(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    before = datetime.now(UTC)
    event_id = await bus.publisher.publish(TOPIC, signup("c9"))
    await bus.start()
    await bus.wait_idle()
    await bus.stop()

    [(_, fields)] = await redis.xrange(STREAM)
    assert fields[b"id"].decode() == event_id
    assert fields[b"type"] == b"EventTypeSignup"
    assert before <= datetime.fromisoformat(fields[b"time"].decode()) <= datetime.now(UTC)
    assert Event.FromString(fields[b"payload"]) == signup("c9")
    assert b"group" not in fields
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(outbox)) == 0


async def test_relay_does_not_append_a_row_twice_when_its_deletion_was_lost(
    sessions: SessionFactory, redis: aioredis.Redis
) -> None:
    relay = Relay(sessions, redis)
    bus_row = {
        "id": "row1",
        "event_id": "e1",
        "topic": TOPIC,
        "type_name": "EventTypeSignup",
        "time": datetime.now(UTC),
        "payload": signup().SerializeToString(),
        "target_group": None,
        "created": datetime.now(UTC),
    }
    async with transaction(sessions) as session:
        await session.execute(outbox.insert().values(**bus_row))
    assert await relay.relay_once() == 1
    # the same row again, as if the commit deleting it had failed after the append
    async with transaction(sessions) as session:
        await session.execute(outbox.insert().values(**bus_row))
    assert await relay.relay_once() == 1

    assert await redis.xlen(STREAM) == 1
    assert await relay.backlog() == 0


async def test_stop_relays_what_is_still_in_the_outbox(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=30.0)
    await bus.start()
    await asyncio.sleep(0.05)  # the relay is now waiting out its long poll
    async with asyncio.timeout(5):
        for i in range(3):
            await bus.publisher.publish(TOPIC, signup(f"c{i}"))
        await bus.stop()

    assert await redis.xlen(STREAM) == 3


async def test_stopped_consumer_leaves_its_group(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    bus.subscribe(TOPIC, "mixpanel-customers", Recorder())
    await bus.start()
    await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()
    [consumer] = await redis.xinfo_consumers(STREAM, "mixpanel-customers")
    assert consumer["name"].decode() == bus.consumer

    await bus.stop()

    assert await redis.xinfo_consumers(STREAM, "mixpanel-customers") == []


async def test_event_bus_refuses_a_redis_client_that_decodes_responses(
    sessions: SessionFactory,
) -> None:
    decoding = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisEventSource(sessions, decoding, Relay(sessions, decoding))
    finally:
        await decoding.aclose()


class Proxy:
    """A TCP proxy to Redis that can be cut off and restored, to stage an outage."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture
async def proxied_redis(redis: aioredis.Redis) -> AsyncIterator[tuple[Proxy, aioredis.Redis]]:
    proxy = Proxy(redis.connection_pool.connection_kwargs["port"])
    await proxy.start()
    client = aioredis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        db=redis.connection_pool.connection_kwargs["db"],
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield proxy, client
    finally:
        await client.aclose()
        with contextlib.suppress(Exception):
            await proxy.cut()


async def test_consumers_and_relay_ride_out_a_redis_outage(
    engine: AsyncEngine, proxied_redis: tuple[Proxy, aioredis.Redis]
) -> None:
    proxy, client = proxied_redis
    bus = redis_event_bus(
        engine,
        client,
        poll_interval=0.01,
        lease=timedelta(seconds=1),
        call_timeout=0.5,
        outage_backoff_max=0.1,
    )
    got = Recorder()
    bus.subscribe(TOPIC, "mixpanel-customers", got)
    await bus.start()
    before = await bus.publisher.publish(TOPIC, signup("before"))
    await bus.wait_idle()

    await proxy.cut()
    during = await bus.publisher.publish(TOPIC, signup("during"))  # the outbox keeps it
    await asyncio.sleep(0.5)  # consumers and relay fail, back off, try again...
    with pytest.raises(TimeoutError):  # the outbox still holds "during"
        await bus.wait_idle(timeout=0.2)
    await proxy.start()
    await bus.wait_idle(timeout=5)
    await bus.stop()

    assert got.ids == [before, during]


async def test_acknowledgements_arriving_together_are_one_xack(
    sessions: SessionFactory, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(sessions, redis)
    source = RedisEventSource(sessions, redis, relay)
    channel = source.channel(TOPIC, "mixpanel-customers", "consumer-1")
    await channel.setup(from_beginning=False)
    await StreamFirstPublisher(sessions, relay).publish_many(
        TOPIC, [signup(f"c{n}") for n in range(5)]
    )
    claims = await channel.fetch(5, 0.5)
    assert len(claims) == 5
    xacks: list[tuple[object, ...]] = []
    real_xack = redis.xack

    async def counted_xack(*args: object) -> int:
        xacks.append(args)
        return int(await real_xack(*args))  # type: ignore[arg-type]

    monkeypatch.setattr(redis, "xack", counted_xack)
    await asyncio.gather(*(channel.ack(claim) for claim in claims))

    assert len(xacks) == 1
    assert (await redis.xpending(STREAM, "mixpanel-customers"))["pending"] == 0


async def test_a_consumer_reads_each_entrys_fields_and_settles_the_ones_not_for_it(
    engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    """Entries as the stream holds them: a whole one, one without a trace context, one a
    replay meant for another group, and one missing its time. The group gets the first
    two as they were written; the other two are acknowledged unread."""
    group = "mixpanel-customers"
    recorder = Recorder()
    bus = redis_event_bus(engine, redis, poll_interval=0.01)
    bus.subscribe(TOPIC, group, recorder)
    await bus.start()
    try:
        time = datetime(2026, 12, 6, 6, 30, 1, 250_000, tzinfo=UTC)
        whole = {
            "id": "e-whole",
            "type": "EventTypeSignup",
            "time": time.isoformat(),
            "payload": signup("c1").SerializeToString(),
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }
        untraced = {**whole, "id": "e-untraced"}
        del untraced["traceparent"]
        elsewhere = {**whole, "id": "e-elsewhere", "group": "another-group"}
        timeless = {**whole, "id": "e-timeless"}
        del timeless["time"]
        for fields in (whole, elsewhere, timeless, untraced):
            await redis.xadd(STREAM, fields)  # type: ignore[arg-type]
        await eventually(lambda: len(recorder.deliveries) == 2)
        await bus.wait_idle()
        pending = await redis.xpending(STREAM, group)
    finally:
        await bus.stop()

    first, second = recorder.deliveries
    assert (first.id, first.topic, first.type_name) == ("e-whole", TOPIC, "EventTypeSignup")
    assert first.time == time
    assert Event.FromString(first.payload) == signup("c1")
    assert first.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert (second.id, second.traceparent) == ("e-untraced", "")
    assert pending["pending"] == 0
