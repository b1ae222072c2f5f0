"""Fixtures of the alerts tests: the database (SQLite and PostgreSQL) and the counter
store on SQL and on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from services.alerts.support import OPENED


@pytest.fixture(autouse=True)
async def close_destinations() -> AsyncIterator[None]:
    """Slack and Discord keep their clients until closed, as the service does at stop."""
    yield
    while OPENED:
        await OPENED.pop().close()


@pytest.fixture
def sql_counters(engine: AsyncEngine) -> CounterStore:
    return SqlCounterStore(engine)


@pytest.fixture(params=["sql", "redis"])
async def counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> CounterStore:
    """The counter store on SQL and on Redis (``redis`` is an emptied test database)."""
    if request.param == "redis":
        return RedisCounterStore(redis, prefix="test:")
    return SqlCounterStore(engine)
