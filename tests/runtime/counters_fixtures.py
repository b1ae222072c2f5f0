"""Fixtures of the counter store tests (counters and admission): each store on a fresh
backend, the time it sees, and small helpers.

Time moves by the SQL store's injected clock, and by real (short) sleeps on Redis. Importing
``subject_fixture`` into a test module gives it the ``subject`` fixture::

    from runtime.counters_fixtures import Subject, subject_fixture  # noqa: F401 - a fixture
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP, AdmissionRequest
from m3o.runtime.counters.owned import OwnedCounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from support.backends import DATABASE_BACKENDS, drop_engine, make_engine

SHORT = timedelta(milliseconds=250)
"""A TTL or window that tests let pass."""
PAST_SHORT = 0.3
LONG = timedelta(seconds=30)
"""A TTL or window that no test outlives."""


def call(**changes: Any) -> AdmissionRequest:
    """A call to a free endpoint (no cap, fair-use quota 10, no endpoint quota, 100 calls
    per window), with ``changes``; the cap counts the endpoint's calls, as in the gateway."""
    base = AdmissionRequest(
        rate_key="rate",
        rate_limit=100,
        cap=NO_CAP,
        cap_key="ep",
        price=0,
        free_key="free",
        free_quota=10,
        endpoint_key="ep",
        endpoint_quota=0,
        total_key="total",
        balance_key="bal",
        debited_key="debited",
        monthly_ttl=LONG,
        rate_window=LONG,
    )
    return dataclasses.replace(base, **changes)


class Clock:
    """UTC time standing still from its creation, moved forward on demand only: a counter's
    expiry then comes when a test says, never because the machine stalled between two
    steps (a 250 ms one did, under a busy suite)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.start + self.offset

    async def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Subject:
    store: CounterStore
    advance: Callable[[float], Awaitable[None]]
    """Let this many seconds pass, as the store sees time."""


OWNED = "owned"
"""The SQLite store of the process that owns the database (counters in memory)."""


@pytest.fixture(name="subject", params=[*DATABASE_BACKENDS, "redis", OWNED])
async def subject_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[Subject]:
    """Each store on a fresh backend. (``redis`` is requested for every backend because an
    async fixture cannot pull one in on demand; it is only an emptied test database.)"""
    async with _subject(str(request.param), tmp_path, redis) as subject:
        yield subject


@pytest.fixture(name="holding_subject", params=[*DATABASE_BACKENDS, "redis"])
async def holding_subject_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[Subject]:
    """Each store that keeps holds (the owned store keeps none: a call's reservation lives
    in its memory until the call is served)."""
    async with _subject(str(request.param), tmp_path, redis) as subject:
        yield subject


@asynccontextmanager
async def _subject(kind: str, tmp_path: Path, redis: aioredis.Redis) -> AsyncIterator[Subject]:
    if kind == "redis":
        yield Subject(RedisCounterStore(redis, prefix="test:"), asyncio.sleep)
        return
    engine, schema = await make_engine("sqlite" if kind == OWNED else kind, tmp_path)
    clock = Clock()
    store = (
        OwnedCounterStore(engine, now=clock.now)
        if kind == OWNED
        else SqlCounterStore(engine, now=clock.now)
    )
    try:
        yield Subject(store, clock.advance)
    finally:
        await store.close()
        await drop_engine(engine, schema)


async def sqlite_threads_stopped() -> None:
    """Wait until aiosqlite's worker threads end: after a failed connect a thread lingers a
    moment, and if the test's event loop closes first it raises in that thread."""
    for _ in range(200):
        if not any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            return
        await asyncio.sleep(0.01)
