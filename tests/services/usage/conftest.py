"""Fixtures of the usage tests: the service's parts over a real database and a real counter
store (SQL or Redis), with fakes of customers and publicapi.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory
from services.usage.support import START, World, make_world
from support.services import MovableClock

REDIS_PREFIX = "usage-test:"


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture(params=["sql-counters", "redis-counters"])
def counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis, clock: MovableClock
) -> CounterStore:
    """The counter store on the database (on the tests' clock) or on Redis. (``redis`` is
    requested for both: it is only an emptied test database.)"""
    if request.param == "redis-counters":
        return RedisCounterStore(redis, prefix=REDIS_PREFIX)
    return SqlCounterStore(engine, now=clock)


@pytest.fixture
def sql_counters(engine: AsyncEngine, clock: MovableClock) -> CounterStore:
    """The counter store on the database, for tests where the counter store is not the
    subject."""
    return SqlCounterStore(engine, now=clock)


@pytest.fixture
def world(sessions: SessionFactory, counters: CounterStore, clock: MovableClock) -> World:
    return make_world(sessions, counters, clock=clock)


@pytest.fixture
def sql_world(sessions: SessionFactory, sql_counters: CounterStore, clock: MovableClock) -> World:
    return make_world(sessions, sql_counters, clock=clock)
