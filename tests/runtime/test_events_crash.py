"""At least once across a real crash: a process dies mid-handler, the group still gets the
event. The consumer runs in a child process that exits hard (``os._exit``) inside its
handler, so nothing of the bus's shutdown runs.

Child processes are slow to start, so this runs on the two real profiles only: the event log
on SQLite (``local``) and outbox + Redis Streams on PostgreSQL (``platform``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.events._bus import Bus
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from runtime.events_fixtures import POLL, Recorder, signup
from support.backends import DATABASE_BACKENDS, REDIS_URL, drop_engine, make_engine

LEASE = timedelta(milliseconds=300)
"""Short, so the survivor soon takes over; one consumer at a time cannot stall another."""
PROFILES = [
    (kind, database)
    for kind, database in [("log", "sqlite"), ("streams", "postgres")]
    if database in DATABASE_BACKENDS
]

CHILD = """
import asyncio, os, sys
from datetime import timedelta

import redis.asyncio as aioredis

from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.store import create_engine


async def main(kind, url, schema, redis_url, lease_ms):
    engine = create_engine(url, schema=schema or None)
    options = {"poll_interval": 0.01, "lease": timedelta(milliseconds=int(lease_ms))}
    if kind == "log":
        bus = sql_event_bus(engine, **options)
    else:
        bus = redis_event_bus(engine, aioredis.Redis.from_url(redis_url), **options)

    async def crash(delivery):
        sys.stdout.write(f"@handling {delivery.id}\\n")
        sys.stdout.flush()
        os._exit(17)

    bus.subscribe("customers", "usage-customers", crash)
    await bus.start()
    sys.stdout.write("@ready\\n")
    sys.stdout.flush()
    await asyncio.sleep(60)


asyncio.run(main(*sys.argv[1:]))
"""


async def _marker(stream: asyncio.StreamReader) -> bytes:
    """The child's next line starting with "@" (its logs go to stdout too)."""
    while True:
        line = await stream.readline()
        if not line or line.startswith(b"@"):
            return line


async def _location(engine: AsyncEngine) -> tuple[str, str]:
    """The database URL and PostgreSQL schema of ``engine``, for the child."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        return url, ""
    async with engine.connect() as conn:
        schema = (await conn.execute(text("SHOW search_path"))).scalar_one()
    return url, str(schema).strip('"')


@pytest.fixture(params=PROFILES, ids=["-".join(p) for p in PROFILES])
async def profile(
    request: pytest.FixtureRequest, tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[tuple[str, AsyncEngine, list[Bus]]]:
    kind, database = request.param
    engine, schema = await make_engine(database, tmp_path)
    buses: list[Bus] = []
    try:
        yield kind, engine, buses
    finally:
        for bus in buses:
            await bus.stop(timeout=1.0)
        await drop_engine(engine, schema)


async def test_event_of_a_crashed_consumer_process_is_redelivered_to_its_group(
    profile: tuple[str, AsyncEngine, list[Bus]], redis: aioredis.Redis
) -> None:
    kind, engine, buses = profile

    def make_bus() -> Bus:
        if kind == "log":
            bus = sql_event_bus(engine, poll_interval=POLL, lease=LEASE)
        else:
            bus = redis_event_bus(engine, redis, poll_interval=POLL, lease=LEASE)
        buses.append(bus)
        return bus

    url, schema = await _location(engine)
    lease_ms = str(int(LEASE.total_seconds() * 1000))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        kind,
        url,
        schema,
        REDIS_URL,
        lease_ms,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(_marker(child.stdout), 30) == b"@ready\n"
        producer = make_bus()
        await producer.start()
        event_id = await producer.publisher.publish("customers", signup())
        line = await asyncio.wait_for(_marker(child.stdout), 10)
        assert line == f"@handling {event_id}\n".encode()
        assert await asyncio.wait_for(child.wait(), 10) == 17
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()

    survivor = make_bus()
    got = Recorder()
    survivor.subscribe("customers", "usage-customers", got)
    await survivor.start()
    await survivor.wait_idle()

    assert got.ids == [event_id]
    assert got.attempts == [2]
