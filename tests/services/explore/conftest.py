"""Fixtures of the explore tests: the handler over a fake publicapi client and a real
counter store (SQL, or Redis where a test asks for it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.services.explore.catalog import Catalog
from m3o.services.explore.handler import Explore
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from services.explore.support import NOW, World


def make_world(counters: CounterStore) -> World:
    publicapi = FakePublicapiClient()
    # No caching: each call sees what the test set the catalog to.
    catalog = Catalog(publicapi, ttl=timedelta(0))
    handler = Explore(catalog=catalog, counters=counters, clock=lambda: NOW)
    return World(handler, publicapi, counters)


@pytest.fixture
def world(engine: AsyncEngine) -> World:
    return make_world(SqlCounterStore(engine))


@pytest.fixture(params=["sql", "redis"])
async def counted_world(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> AsyncIterator[World]:
    """The world with its search counts on each counter store."""
    if request.param == "redis":
        yield make_world(RedisCounterStore(redis, prefix="test:"))
    else:
        yield make_world(SqlCounterStore(engine))
