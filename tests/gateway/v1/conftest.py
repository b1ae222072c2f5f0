"""Counter stores for the public API's tests: SQLite by default; every backend where the
admission itself is under test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.v1.support import sqlite_counters
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from support.backends import DATABASE_BACKENDS, REDIS_URL, drop_engine, make_engine


@pytest.fixture
async def counters(tmp_path: Path) -> AsyncIterator[CounterStore]:
    """A SQLite counter store."""
    async with sqlite_counters(tmp_path) as store:
        yield store


@pytest.fixture(params=[*DATABASE_BACKENDS, "redis"])
async def any_counters(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[CounterStore]:
    """A counter store on every backend: the databases and Redis."""
    if request.param == "redis":
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
        await client.flushdb()
        try:
            yield RedisCounterStore(client)
        finally:
            await client.flushdb()
            await client.aclose()
        return
    engine, schema = await make_engine(str(request.param), tmp_path)
    try:
        yield SqlCounterStore(engine)
    finally:
        await drop_engine(engine, schema)
