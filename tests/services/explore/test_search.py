"""Search: categories, ranking, and counting the terms."""

from __future__ import annotations

import pytest

from m3o.runtime.errors import BadRequest, Unavailable
from m3o.services.explore.catalog import Catalog
from m3o.services.explore.handler import Explore
from m3o.services.explore.proto import explore_pb2 as pb
from m3o.services.explore.searches import search_key
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from services.explore.support import NOW, World, call, entry


def catalog(world: World) -> None:
    world.catalog(
        entry("weather", category="Data", description="Forecasts, and a hello to the sky"),
        entry("helloworld", category="example", description="Greets",
              endpoints=("Helloworld.Call",)),
        entry("greeter", category="example", endpoints=("Greeter.SayHello",)),
        entry("cache", category="storage", display_name="Hello Cache"),
        entry("db", category="storage", description="Stores rows"),
    )  # fmt: skip


async def search(world: World, **fields: object) -> list[str]:
    request = pb.SearchRequest(**fields)  # type: ignore[arg-type]
    response = await world.handler.search(request, call("Search"))
    return [api.name for api in response.apis]


async def test_an_empty_term_returns_every_api_sorted_by_name(world: World) -> None:
    catalog(world)
    assert await search(world) == ["cache", "db", "greeter", "helloworld", "weather"]


async def test_matches_rank_name_then_endpoint_then_description(world: World) -> None:
    catalog(world)
    # helloworld by name, cache by display name, greeter by endpoint, weather by description
    assert await search(world, search_term="HELLO") == [
        "cache",
        "helloworld",
        "greeter",
        "weather",
    ]


async def test_a_term_matching_nothing_returns_nothing(world: World) -> None:
    catalog(world)
    assert await search(world, search_term="nothing like it") == []


async def test_categories_match_ignoring_case_and_the_old_category_field_joins_them(
    world: World,
) -> None:
    catalog(world)
    assert await search(world, categories=["EXAMPLE"]) == ["greeter", "helloworld"]
    assert await search(world, category="data", categories=["Storage"]) == [
        "cache",
        "db",
        "weather",
    ]
    assert await search(world, search_term="hello", categories=["example", "storage"]) == [
        "cache",
        "helloworld",
        "greeter",
    ]
    assert await search(world, categories=["", " "]) == await search(world)


async def test_each_term_is_counted_lower_cased_with_dashes(counted_world: World) -> None:
    world = counted_world
    catalog(world)
    await search(world, search_term="Hello  World")
    await search(world, search_term=" hello world ")
    await search(world, search_term="db")
    await search(world, search_term="d\x00b\t")
    await search(world)
    counters = world.counters
    assert search_key("hello-world", NOW) == "explore:searches:202403:hello-world"
    assert await counters.get("explore:searches:202403:hello-world") == 2
    assert await counters.get("explore:searches:202403:db") == 1
    assert await counters.get("explore:searches:202403:d-b") == 1
    assert await counters.get("explore:searches:202403:") == 0


async def test_a_term_longer_than_200_characters_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await search(world, search_term="x" * 201)
    assert caught.value == BadRequest("explore.search", "search_term is longer than 200 characters")


async def test_too_many_categories_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await search(world, categories=["c"] * 101)
    assert caught.value == BadRequest("explore.search", "at most 100 categories")


class DownCounters:
    async def incr(self, key: str, amount: int = 1, **_: object) -> int:
        raise Unavailable("counters", "Counter store unavailable")


async def test_search_answers_when_the_term_cannot_be_counted() -> None:
    publicapi = FakePublicapiClient()
    publicapi.list.returns(publicapi_pb.ListResponse(apis=[entry("helloworld")]))
    handler = Explore(catalog=Catalog(publicapi), counters=DownCounters())  # type: ignore[arg-type]
    response = await handler.search(pb.SearchRequest(search_term="hello"), call("Search"))
    assert [api.name for api in response.apis] == ["helloworld"]
