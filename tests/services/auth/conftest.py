"""Fixtures of the auth tests: the handler over a real database and a real counter store.

On SQLite the counter store is the SQL one (the ``local`` profile), on PostgreSQL it is
Redis (the ``platform`` profile). Tests that need the counter store's time to move build
their own SQL store on the test clock.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory, is_sqlite
from services.auth.support import Clock, World, make_world


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def counters(engine: AsyncEngine, clock: Clock, redis: aioredis.Redis) -> CounterStore:
    if is_sqlite(engine):
        return SqlCounterStore(engine, now=clock)
    return RedisCounterStore(redis, prefix="test:")


@pytest.fixture
async def world(sessions: SessionFactory, counters: CounterStore, clock: Clock) -> World:
    made = make_world(sessions, counters, clock)
    await made.auth.ensure_signing_key()
    await made.auth.seed_default_rules()
    return made
