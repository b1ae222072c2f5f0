"""Redis unreachable while more calls are served than the request log's buffer holds: no
request event is lost, and usage counts each exactly once once Redis is back.

The public API runs as in the platform profile: a Redis counter store and request events
published straight to their stream (the outbox while Redis is away), over a Redis server of
the test's own that it stops and starts, and the database of the ``engine`` fixture
(SQLite and PostgreSQL). Free calls go through while the counter store is away
(``fail_open_free``); the buffer holds 10 events, so many of the calls' events are
spilled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.v1.support import KEY, PROJECT, gateway
from m3o.events.requests import TOPIC
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.events.redis import redis_event_bus, stream_first_publisher
from m3o.runtime.store import SessionFactory
from m3o.runtime.store.redis import redis_client
from m3o.services.usage import history
from m3o.services.usage.recording import RequestRecorder
from support.throwaway_redis import RedisServer, redis_server

CALLS = 600
"""Sixty times the buffer: most events are spilled, over many spills."""
BUFFER = 10
IN_FLIGHT = 32
HELLO = "helloworld$Helloworld.Call"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as started:
        yield started


async def _calls_counted(sessions: SessionFactory) -> int:
    today = datetime.now(UTC).date()
    async with sessions() as session:
        totals = await history.month_totals(session, today, today, PROJECT)
    return sum(total.requests for total in totals if total.path == HELLO)


@pytest.mark.timeout(300)
async def test_no_request_event_is_lost_while_redis_is_away_and_each_is_counted_once(
    engine: AsyncEngine, sessions: SessionFactory, server: RedisServer
) -> None:
    counters = redis_counter_store(server.url(), timeout=1.0)
    events = redis_client(server.url(), timeout=1.0, connect_timeout=0.5)
    publisher = stream_first_publisher(engine, events)
    gw = gateway(
        counters,
        settings=PublicAPISettings(fail_open_free=True, request_events_buffer=BUFFER),
        publisher=publisher,
        spill=publisher,
    )
    requests = gw.v1.requests
    try:
        for hook in gw.v1.on_startup:
            await hook()
        server.stop()
        statuses: list[int] = []
        async with gw.http() as http:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def call(n: int) -> None:
                async with gate:
                    response = await http.post(
                        "/v1/helloworld/call",
                        json={"name": f"n{n}"},
                        headers={"Authorization": f"Bearer {KEY}"},
                    )
                statuses.append(response.status_code)

            await asyncio.gather(*(call(n) for n in range(CALLS)))
        assert statuses == [200] * CALLS
        assert requests.spilled > 0  # past the buffer: spilled, not dropped
        assert await requests.flush()  # the rest, into the outbox too: Redis is away
        assert await publisher.waiting(TOPIC) == CALLS

        server.start()
        bus = redis_event_bus(engine, events, poll_interval=0.05)
        recorder = RequestRecorder(sessions=sessions, counters=counters)
        bus.subscribe_batch(TOPIC, "usage-requests", recorder.handle)
        await bus.start()
        try:
            try:
                async with asyncio.timeout(120):
                    while await _calls_counted(sessions) < CALLS:
                        await asyncio.sleep(0.05)
            except TimeoutError:
                counted = await _calls_counted(sessions)
                raise AssertionError(f"{counted} of {CALLS} calls counted") from None
            await bus.wait_idle(timeout=60)
        finally:
            await bus.stop()
        assert await _calls_counted(sessions) == CALLS
        assert await publisher.waiting(TOPIC) == 0
        entries = await events.xrange(f"m3o:events:{TOPIC}")
        assert len({fields[b"id"] for _, fields in entries}) == CALLS
    finally:
        for hook in gw.v1.on_shutdown:
            await hook()
        await counters.close()
        await events.aclose()
