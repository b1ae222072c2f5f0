"""Fixtures of the event bus tests: a bus factory for each backend, and small helpers.

Backends: ``log`` is the local profile's event log in the database, run on SQLite and
PostgreSQL; ``streams`` is the platform profile's PostgreSQL outbox relayed to Redis Streams.
Importing ``engine_fixture`` into a test module overrides the suite's ``engine`` fixture
there (same databases, made by ``support.backends.make_engine``) with one parametrized by
profile, so each test runs on those three combinations; ``make_bus`` builds buses of that
profile::

    from runtime.events_fixtures import engine_fixture, make_bus_fixture  # noqa: F401
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import Event, EventType
from m3o.runtime.events import Delivery
from m3o.runtime.events._bus import Bus
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from support.backends import DATABASE_BACKENDS, drop_engine, make_engine

PROFILES = [
    (kind, database)
    for kind, database in [("log", "sqlite"), ("log", "postgres"), ("streams", "postgres")]
    if database in DATABASE_BACKENDS
]
LEASE = timedelta(seconds=1)
"""Long enough that a loaded test machine never looks like a dead consumer."""
POLL = 0.01


class MakeBus(Protocol):
    def __call__(self, **options: Any) -> Bus: ...


@pytest.fixture(
    name="engine", params=PROFILES, ids=[f"{kind}-{database}" for kind, database in PROFILES]
)
async def engine_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An empty database with every table, for the profile under test."""
    _kind, database = request.param
    made, schema = await make_engine(database, tmp_path)
    try:
        yield made
    finally:
        await drop_engine(made, schema)


@pytest.fixture(name="make_bus")
async def make_bus_fixture(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> AsyncIterator[MakeBus]:
    """Builds buses of the profile under test on its database; stops them all at the end.

    Defaults suit tests: 10 ms polls and a 1 s lease.
    """
    bus_kind = request.node.callspec.params["engine"][0]
    buses: list[Bus] = []

    def make(**options: Any) -> Bus:
        options.setdefault("poll_interval", POLL)
        options.setdefault("lease", LEASE)
        options.setdefault("outage_backoff_max", 0.2)
        if bus_kind == "log":
            bus = sql_event_bus(engine, **options)
        else:
            bus = redis_event_bus(engine, redis, call_timeout=2.0, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop(timeout=1.0)


def unreachable_redis() -> aioredis.Redis:
    """A Redis client to a port nothing listens on, failing at once (no retries)."""
    return aioredis.Redis(
        host="127.0.0.1",
        port=1,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


def signup(customer_id: str = "c1") -> Event:
    event = Event(type=EventType.EventTypeSignup, caller_id=customer_id)
    event.customer.id = customer_id
    event.signup.method = "email"
    return event


class Recorder:
    """A handler that records what it gets, failing while ``fail`` says so."""

    def __init__(self, fail: Callable[[Delivery], bool] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.times: list[float] = []
        self._fail = fail

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.times.append(time.monotonic())
        if self._fail is not None and self._fail(delivery):
            raise RuntimeError(f"handler failed on attempt {delivery.attempt}")

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.deliveries]

    @property
    def attempts(self) -> list[int]:
        return [d.attempt for d in self.deliveries]


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check`` holds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
