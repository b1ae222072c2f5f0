"""Fixtures of the endtoend tests: the service over a real database (SQLite and
PostgreSQL) and its counter store, and an HTTP client for runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore


@pytest.fixture
async def counters(engine: AsyncEngine) -> AsyncIterator[CounterStore]:
    store = SqlCounterStore(engine)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
