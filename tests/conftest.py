"""Fixtures shared by the whole suite: databases and Redis on every backend.

Storage tests run on SQLite and PostgreSQL (and Redis where they use it). The backends come
from ``M3O_TEST_BACKENDS`` (default ``sqlite,postgres``); a backend that is asked for but
unreachable fails the test, it is never skipped. PostgreSQL and Redis addresses come from
``M3O_TEST_POSTGRES`` and ``M3O_TEST_REDIS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from backends import DATABASE_BACKENDS, REDIS_URL, drop_engine, drop_pooled_schemas, make_engine
from m3o.runtime.store import SessionFactory, session_factory


@pytest.fixture(scope="session", autouse=True)
def pooled_databases() -> Iterator[None]:
    """The PostgreSQL schemas and SQLite template the run made, removed at its end."""
    yield
    drop_pooled_schemas()


@pytest.fixture(params=DATABASE_BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database with every table, once per database backend."""
    made, schema = await make_engine(str(request.param), tmp_path)
    try:
        yield made
    finally:
        await drop_engine(made, schema)


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    """A Redis connection to an emptied test database."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
