"""Database backends for tests: empty SQLite files and PostgreSQL schemas, made cheaply.

Creating every table costs a tenth to half a second per test, which over the suite's
thousands of storage tests was minutes. So each process builds the tables once:

- SQLite: one template file with every table; each test gets a copy of it.
- PostgreSQL: schemas with every table are kept in a pool; a test takes one, and when it is
  done every table is emptied and its sequences restarted (one round trip) and the schema
  goes back to the pool (or is dropped, if the test altered its tables).
  ``drop_pooled_schemas`` removes them all at the end of the run.

  The tables are emptied with ``DELETE``, children first, not ``TRUNCATE``: a test leaves a
  few rows, and ``TRUNCATE`` gives each of the 44 tables and each of their indexes a new
  file, which took 150-220 ms a test while the suite ran, against 3-7 ms for the deletes
  (``ALTER SEQUENCE ... RESTART`` does what ``RESTART IDENTITY`` did).

A test still sees exactly what it saw before: a database with every table and no rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.platform.services import METADATA
from m3o.runtime.store import create_engine, sqlite_url
from support.servers import RunServers, postgres_backend, redis_backend, with_database
from support.workers import worker_index

DATABASE_BACKENDS = [
    b.strip()
    for b in os.environ.get("M3O_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip() in ("sqlite", "postgres")
]

_servers = RunServers(os.environ, [postgres_backend(), redis_backend(os.environ)])


def postgres_url() -> str:
    """The run's PostgreSQL (see ``servers``): configured, the default, or a throwaway."""
    return _servers.url("PostgreSQL")


REDIS_DATABASES_PER_WORKER = 4
"""Redis databases set apart for each pytest-xdist worker: the suite uses the configured
one (15 by default) and the platform tests two more (14 and 12)."""


def redis_url(database: int | None = None) -> str:
    """The run's Redis (see ``servers``), at ``database`` if given (else 15 or as
    configured), moved down by :data:`REDIS_DATABASES_PER_WORKER` per xdist worker, so
    workers running at once never flush each other's data."""
    url = _servers.url("Redis")
    configured = int(urlsplit(url).path.strip("/") or 0)
    wanted = configured if database is None else database
    shifted = wanted - REDIS_DATABASES_PER_WORKER * worker_index()
    if shifted < 0:
        raise RuntimeError(
            f"Redis database {wanted} leaves none for xdist worker {worker_index()}: "
            "run fewer workers (-n) or configure a higher database in M3O_TEST_REDIS"
        )
    return with_database(url, shifted)


def __getattr__(name: str) -> str:
    """``POSTGRES_URL`` and ``REDIS_URL``, resolved when first asked for."""
    if name == "POSTGRES_URL":
        return postgres_url()
    if name == "REDIS_URL":
        return redis_url()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def start_servers() -> None:
    """Resolve the servers the run needs now, at its start (Redis, and PostgreSQL if used)."""
    redis_url()
    if "postgres" in DATABASE_BACKENDS:
        postgres_url()


def servers_report() -> list[str]:
    return _servers.report()


def stop_servers() -> None:
    """Stop the throwaway servers the run started, removing their files."""
    _servers.close()


_sqlite_template: list[Path] = []  # the template file, once made
_free_schemas: list[str] = []
_pooled_schemas: list[str] = []
_emptying: dict[str, str] = {}  # schema -> the statements that empty it


async def create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for metadata in METADATA:
            await conn.run_sync(metadata.create_all)


def run_apart(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on a loop of its own thread, leaving the tests' loops alone."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


async def _template_file() -> Path:
    if not _sqlite_template:
        path = Path(tempfile.mkdtemp(prefix="m3o-template-")) / "m3o.db"
        made = create_engine(sqlite_url(str(path)))
        await create_all(made)
        await made.dispose()
        _sqlite_template.append(path)
    return _sqlite_template[0]


async def _new_schema() -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url(), pool_size=1)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await admin.dispose()
    made = create_engine(postgres_url(), schema=schema, pool_size=1)
    try:
        await create_all(made)
        async with made.connect() as conn:
            found = await conn.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = :schema"),
                {"schema": schema},
            )
            sequences = sorted(found.scalars())
    finally:
        await made.dispose()
    deletes = [
        f'DELETE FROM "{schema}"."{table.name}"'
        for metadata in METADATA
        for table in reversed(metadata.sorted_tables)
    ]
    restarts = [f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART' for sequence in sequences]
    _emptying[schema] = ";\n".join(["SET LOCAL lock_timeout = '30s'", *deletes, *restarts])
    _pooled_schemas.append(schema)
    return schema


async def _empty_schema(schema: str) -> None:
    cleaner = create_engine(postgres_url(), pool_size=1)
    try:
        async with cleaner.begin() as conn:
            # Several statements in one round trip: asyncpg's simple query protocol.
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute(_emptying[schema])
    finally:
        await cleaner.dispose()


async def make_engine(backend: str, tmp_path: Path) -> tuple[AsyncEngine, str | None]:
    """An empty database with every table: a SQLite file or a PostgreSQL schema."""
    if backend == "sqlite":
        target = tmp_path / "m3o.db"
        shutil.copyfile(await _template_file(), target)
        return create_engine(sqlite_url(str(target))), None
    schema = _free_schemas.pop() if _free_schemas else await _new_schema()
    return create_engine(postgres_url(), schema=schema), schema


async def drop_engine(engine: AsyncEngine, schema: str | None) -> None:
    """Close ``engine``; a PostgreSQL schema is emptied and goes back to the pool."""
    await engine.dispose()
    if schema is None:
        return
    try:
        await _empty_schema(schema)
    except (SQLAlchemyError, asyncpg.PostgresError):  # the test changed the tables: drop it
        await _drop_schemas([schema])
        _pooled_schemas.remove(schema)
        del _emptying[schema]
    else:
        _free_schemas.append(schema)


async def _drop_schemas(schemas: list[str]) -> None:
    admin = create_engine(postgres_url(), pool_size=1)
    try:
        async with admin.begin() as conn:
            for schema in schemas:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def drop_pooled_schemas() -> None:
    """Drop every schema this process made (at the end of the run)."""
    if _pooled_schemas:
        run_apart(_drop_schemas(list(_pooled_schemas)))
        _pooled_schemas.clear()
        _free_schemas.clear()
        _emptying.clear()
    for path in _sqlite_template:
        shutil.rmtree(path.parent, ignore_errors=True)
    _sqlite_template.clear()
