"""Fixtures of the usage tests: the service's parts over a real database and a real counter
store (SQL or Redis), with fakes of customers and publicapi.

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
from services.usage.support import Clock, World, make_world

REDIS_PREFIX = "usage-test:"


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
def usage_postgres_schema() -> Iterator[str]:
    """One PostgreSQL schema with every table for this folder's tests ("" if not asked)."""
    if "postgres" not in DATABASE_BACKENDS:
        yield ""
        return
    schema = f"t_usage_{uuid.uuid4().hex[:12]}"
    _run_apart(_create_schema(schema))
    try:
        yield schema
    finally:
        _run_apart(_drop_schema(schema))


@pytest.fixture(params=DATABASE_BACKENDS)
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, usage_postgres_schema: str
) -> AsyncIterator[AsyncEngine]:
    """An empty database with every table, once per database backend."""
    if request.param == "sqlite":
        made, schema = await make_engine("sqlite", tmp_path)
        try:
            yield made
        finally:
            await drop_engine(made, schema)
        return
    made = create_engine(POSTGRES_URL, schema=usage_postgres_schema)
    tables = [table for metadata in all_metadata() for table in metadata.sorted_tables]
    async with made.begin() as conn:
        for table in reversed(tables):
            await conn.execute(table.delete())
    try:
        yield made
    finally:
        await made.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sql-counters", "redis-counters"])
def counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis, clock: Clock
) -> CounterStore:
    """The counter store on the database (on the tests' clock) or on Redis. (``redis`` is
    requested for both: it is only an emptied test database.)"""
    if request.param == "redis-counters":
        return RedisCounterStore(redis, prefix=REDIS_PREFIX)
    return SqlCounterStore(engine, now=clock)


@pytest.fixture
def sql_counters(engine: AsyncEngine, clock: Clock) -> CounterStore:
    """The counter store on the database, for tests where the counter store is not the
    subject."""
    return SqlCounterStore(engine, now=clock)


@pytest.fixture
def world(sessions: SessionFactory, counters: CounterStore, clock: Clock) -> World:
    return make_world(sessions, counters, clock=clock)


@pytest.fixture
def sql_world(sessions: SessionFactory, sql_counters: CounterStore, clock: Clock) -> World:
    return make_world(sessions, sql_counters, clock=clock)
