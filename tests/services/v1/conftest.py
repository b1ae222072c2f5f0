"""Fixtures of the v1 tests: the handler over a real database and counter store, with fakes
of auth and publicapi, a projects stand-in and the recording publisher.

``engine`` is the suite's fixture made cheaper on PostgreSQL: one schema for the whole run,
every table emptied before each test. SQLite gets a fresh file per test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backends import DATABASE_BACKENDS, POSTGRES_URL, create_all, drop_engine, make_engine
from m3o.registry import all_metadata
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters_redis import RedisCounterStore
from m3o.runtime.counters_sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory, create_engine
from services.v1.support import World, make_world


def _run_apart(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on a loop of its own thread, leaving the tests' loops alone."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


async def _create_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_URL, pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    made = create_engine(POSTGRES_URL, schema=schema)
    await create_all(made)
    await made.dispose()


async def _drop_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_URL, pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()


@pytest.fixture(scope="session")
def v1_postgres_schema() -> Iterator[str]:
    """One PostgreSQL schema with every table for this folder's tests ("" if not asked)."""
    if "postgres" not in DATABASE_BACKENDS:
        yield ""
        return
    schema = f"t_v1_{uuid.uuid4().hex[:12]}"
    _run_apart(_create_schema(schema))
    try:
        yield schema
    finally:
        _run_apart(_drop_schema(schema))


@pytest.fixture(params=DATABASE_BACKENDS)
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, v1_postgres_schema: str
) -> AsyncIterator[AsyncEngine]:
    """An empty database with every table, once per database backend."""
    if request.param == "sqlite":
        made, schema = await make_engine("sqlite", tmp_path)
        try:
            yield made
        finally:
            await drop_engine(made, schema)
        return
    made = create_engine(POSTGRES_URL, schema=v1_postgres_schema)
    tables = [table for metadata in all_metadata() for table in metadata.sorted_tables]
    async with made.begin() as conn:
        for table in reversed(tables):  # rows that others refer to go last
            await conn.execute(table.delete())
    try:
        yield made
    finally:
        await made.dispose()


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
