"""The catalog explore reads: kept a few seconds, refreshed one read at a time, a stale
copy served when publicapi fails."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from m3o.runtime.errors import Unavailable
from m3o.services.explore.catalog import Catalog
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from services.explore.support import entry


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listing(*names: str) -> publicapi_pb.ListResponse:
    return publicapi_pb.ListResponse(apis=[entry(name) for name in names])


async def names(catalog: Catalog) -> list[str]:
    return [listing.summary.name for listing in await catalog.listings()]


async def test_the_catalog_is_read_again_once_its_copy_is_older_than_the_ttl() -> None:
    publicapi = FakePublicapiClient()
    publicapi.list.returns(listing("a"))
    clock = ManualClock()
    catalog = Catalog(publicapi, ttl=timedelta(seconds=5), clock=clock)
    assert await names(catalog) == ["a"]
    publicapi.list.returns(listing("a", "b"))
    clock.now += 4.9
    assert await names(catalog) == ["a"]
    clock.now += 0.1
    assert await names(catalog) == ["a", "b"]
    assert publicapi.list.call_count == 2


async def test_concurrent_readers_share_one_read() -> None:
    publicapi = FakePublicapiClient()
    started = asyncio.Event()

    async def slow(_request: publicapi_pb.ListRequest) -> publicapi_pb.ListResponse:
        started.set()
        await asyncio.sleep(0.05)
        return listing("a")

    publicapi.list.calls_through(slow)
    catalog = Catalog(publicapi)
    results = await asyncio.gather(*(names(catalog) for _ in range(5)))
    assert results == [["a"]] * 5
    assert publicapi.list.call_count == 1


async def test_a_failed_read_serves_the_previous_copy() -> None:
    publicapi = FakePublicapiClient()
    publicapi.list.returns_once(listing("a"), Unavailable("publicapi.list", "down"))
    clock = ManualClock()
    catalog = Catalog(publicapi, clock=clock)
    assert await names(catalog) == ["a"]
    clock.now += 10
    assert await names(catalog) == ["a"]
    assert publicapi.list.call_count == 2


async def test_a_failed_first_read_is_the_callers_error() -> None:
    publicapi = FakePublicapiClient()
    publicapi.list.raises(Unavailable("publicapi.list", "down"))
    with pytest.raises(Unavailable):
        await Catalog(publicapi).listings()
