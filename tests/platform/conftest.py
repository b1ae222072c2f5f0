"""Fixtures of the platform tests; the harness they build on is ``support.platform``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from support.platform import emptied_redis, fresh_database


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="m3o-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_db(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The Redis database at the test module's ``REDIS_URL``, empty before and after."""
    with emptied_redis(str(request.module.REDIS_URL)) as client:
        yield client
