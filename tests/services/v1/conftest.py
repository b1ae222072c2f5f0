"""Fixtures of the v1 tests: the handler over a real database and counter store, with fakes
of auth and publicapi, a projects stand-in and the recording publisher.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory
from services.v1.support import World, make_world


@pytest.fixture
def world(engine: AsyncEngine, sessions: SessionFactory) -> World:
    """The handler with the database's own counter store."""
    return make_world(sessions, SqlCounterStore(engine))


@pytest.fixture(params=["sql", "redis"])
async def counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> CounterStore:
    """The counter store on SQL and on Redis. (``redis`` is requested for both because an
    async fixture cannot pull one in on demand; it is only an emptied test database.)"""
    if request.param == "redis":
        return RedisCounterStore(redis, prefix="test:")
    return SqlCounterStore(engine)


@pytest.fixture
def mirrored_world(sessions: SessionFactory, counters: CounterStore) -> World:
    """The handler with the counter store on each backend."""
    return make_world(sessions, counters)
