"""Fixtures shared by the whole suite: databases and Redis on every backend.

Storage tests run on SQLite and PostgreSQL (and Redis where they use it). The backends come
from ``M3O_TEST_BACKENDS`` (default ``sqlite,postgres``); a backend that is asked for but
unreachable fails the test, it is never skipped. PostgreSQL and Redis addresses come from
``M3O_TEST_POSTGRES`` and ``M3O_TEST_REDIS``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.registry import all_metadata
from m3o.runtime.store import SessionFactory, create_engine, session_factory, sqlite_url

POSTGRES_URL = os.environ.get(
    "M3O_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("M3O_TEST_REDIS", "redis://127.0.0.1:6379/15")
DATABASE_BACKENDS = [
    b.strip()
    for b in os.environ.get("M3O_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip() in ("sqlite", "postgres")
]


async def create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for metadata in all_metadata():
            await conn.run_sync(metadata.create_all)


async def make_engine(backend: str, tmp_path: Path) -> tuple[AsyncEngine, str | None]:
    """A fresh, empty database with every table: a SQLite file or a PostgreSQL schema."""
    if backend == "sqlite":
        engine = create_engine(sqlite_url(str(tmp_path / "m3o.db")))
        await create_all(engine)
        return engine, None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = create_engine(POSTGRES_URL, schema=schema)
    await create_all(engine)
    return engine, schema


async def drop_engine(engine: AsyncEngine, schema: str | None) -> None:
    await engine.dispose()
    if schema is not None:
        admin = create_engine(POSTGRES_URL, pool_size=1)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


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
