"""Fixtures of the balance tests: the service over a real database and counter store, with
a fake of customers and the recording publisher.

``world`` keeps its counters in the database (SQLite or PostgreSQL); ``hot_world`` runs the
hot-balance tests once with the database's counter store and once with Redis.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory
from services.balance.support import World, make_world


@pytest.fixture
def world(engine: AsyncEngine, sessions: SessionFactory) -> World:
    return make_world(sessions, SqlCounterStore(engine))


@pytest.fixture(params=["sql-counters", "redis-counters"])
def counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> CounterStore:
    """The database's counter store, or Redis (``redis`` is an emptied test database)."""
    if request.param == "redis-counters":
        return RedisCounterStore(redis, prefix="test:")
    return SqlCounterStore(engine)


@pytest.fixture
def hot_world(sessions: SessionFactory, counters: CounterStore) -> World:
    return make_world(sessions, counters)
