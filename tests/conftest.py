"""Fixtures shared by the whole suite: databases and Redis on every backend, and Stripe.

Storage tests run on SQLite and PostgreSQL (and Redis where they use it). The backends come
from ``M3O_TEST_BACKENDS`` (default ``sqlite,postgres``); a backend that is asked for but
unreachable fails the run, it is never skipped. Where PostgreSQL and Redis are is settled when
the run starts (``support.servers``): ``M3O_TEST_POSTGRES`` and ``M3O_TEST_REDIS`` if set (a
server that does not answer there stops the run), else the default addresses if a server
answers, else throwaway servers started for the run and removed at its end.

Stripe is never reached: ``stripe_fake`` is a local fake of its HTTP API
(``tests/support/stripe_fake``), one server per test process, emptied for each test.

``spans`` turns tracing on for one test, recording spans in memory.

Every platform the tests start hashes secrets with a cheap Argon2id
(``support.password_hash``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.logging.tracing import start_tracing, stop_tracing
from m3o.runtime.store import SessionFactory, session_factory
from support.backends import (
    DATABASE_BACKENDS,
    drop_engine,
    drop_pooled_schemas,
    make_engine,
    redis_url,
    servers_report,
    start_servers,
    stop_servers,
)
from support.database_drops import wait_for_drops
from support.password_hash import CHEAP_PASSWORD_HASH
from support.servers import ServerUnreachable

if TYPE_CHECKING:
    from support.stripe_fake import StripeFake


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help:
        return
    # Inherited by every process the tests start, and by the platforms opened in process
    # with this process's environment (see support.password_hash).
    os.environ.update(CHEAP_PASSWORD_HASH)
    try:
        start_servers()
    except ServerUnreachable as error:
        raise pytest.UsageError(str(error)) from error


def pytest_report_header(config: pytest.Config) -> list[str]:
    return servers_report()


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_servers()


@pytest.fixture(scope="session", autouse=True)
def pooled_databases() -> Iterator[None]:
    """The PostgreSQL schemas and SQLite template the run made, removed at its end, and the
    databases of finished tests dropped."""
    yield
    drop_pooled_schemas()
    wait_for_drops()


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
    client = aioredis.Redis.from_url(redis_url(), socket_timeout=5)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeFake]:
    """The fake Stripe of this test process, served on a free port until the run ends."""
    # Imported here: the stripe library takes a second to import, and few tests need it.
    from support.stripe_fake import StripeFake

    with StripeFake().running() as fake:
        yield fake


@pytest.fixture
def stripe_fake(stripe_server: StripeFake) -> StripeFake:
    """The fake Stripe, emptied for this test: no objects, requests, failures or keys."""
    stripe_server.reset()
    return stripe_server


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process for the test, every finished span kept in memory."""
    exporter = InMemorySpanExporter()
    assert start_tracing("m3o-test", exporter=exporter)
    try:
        yield exporter
    finally:
        stop_tracing()
