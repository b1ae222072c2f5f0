"""Fixtures of the signup tests: the handler over a real database and counter store, with
fakes of customers, auth, emails and the publisher.

``engine`` is the suite's fixture made cheaper on PostgreSQL: one schema for the whole run,
every table emptied before each test (creating a schema with every table costs about half a
second, deleting the few rows a test left a few milliseconds). SQLite gets a fresh file
per test as before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backends import DATABASE_BACKENDS, POSTGRES_URL, create_all, drop_engine, make_engine
from m3o.registry import all_metadata
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters_sqlite import SqlCounterStore
from m3o.runtime.fakes import FakePublisher
from m3o.runtime.store import SessionFactory, create_engine
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.signup.handler import Signup
from m3o.services.signup.settings import SignupSettings
from services.signup.support import ISSUED, Clock, CustomersDouble, World


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
def signup_postgres_schema() -> Iterator[str]:
    """One PostgreSQL schema with every table for this folder's tests ("" if not asked)."""
    if "postgres" not in DATABASE_BACKENDS:
        yield ""
        return
    schema = f"t_signup_{uuid.uuid4().hex[:12]}"
    _run_apart(_create_schema(schema))
    try:
        yield schema
    finally:
        _run_apart(_drop_schema(schema))


@pytest.fixture(params=DATABASE_BACKENDS)
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, signup_postgres_schema: str
) -> AsyncIterator[AsyncEngine]:
    """An empty database with every table, once per database backend."""
    if request.param == "sqlite":
        made, schema = await make_engine("sqlite", tmp_path)
        try:
            yield made
        finally:
            await drop_engine(made, schema)
        return
    made = create_engine(POSTGRES_URL, schema=signup_postgres_schema)
    tables = [table for metadata in all_metadata() for table in metadata.sorted_tables]
    async with made.begin() as conn:
        for table in reversed(tables):  # rows that others refer to go last
            await conn.execute(table.delete())
    try:
        yield made
    finally:
        await made.dispose()


def make_world(
    engine: AsyncEngine,
    sessions: SessionFactory,
    settings: SignupSettings | None = None,
    counters: CounterStore | None = None,
) -> World:
    """The handler with fresh fakes; the counter store is the database's on ``clock``
    unless given."""
    clock = Clock()
    customers = CustomersDouble()
    auth = FakeAuthClient()
    auth.token.returns(auth_pb.TokenResponse(token=ISSUED))
    emails = FakeEmailsClient()
    publisher = FakePublisher()
    handler = Signup(
        sessions=sessions,
        publisher=publisher,
        counters=counters or SqlCounterStore(engine, now=clock),
        customers=customers.fake,
        auth=auth,
        emails=emails,
        settings=settings or SignupSettings(),
        clock=clock,
    )
    return World(handler, customers, auth, emails, publisher, clock, sessions)


@pytest.fixture
def world(engine: AsyncEngine, sessions: SessionFactory) -> World:
    return make_world(engine, sessions)
