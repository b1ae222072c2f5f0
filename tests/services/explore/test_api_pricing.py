"""API, ListCategories and Pricing."""

from __future__ import annotations

import pytest

from m3o.runtime.errors import BadRequest, NotFound
from m3o.services.explore.proto import explore_pb2 as pb
from services.explore.support import World, call, entry


async def test_api_returns_the_summary_and_the_public_entry(world: World) -> None:
    stored = entry(
        "helloworld",
        endpoints=("Helloworld.Call",),
        category="example",
        description="Greets",
        pricing={"Helloworld.Call": 5},
        quotas={"Helloworld.Call": 100},
    )
    world.catalog(stored)
    response = await world.handler.api(pb.APIRequest(name="HelloWorld"), call("API"))

    assert response.summary.name == "helloworld"
    assert [e.name for e in response.summary.endpoints] == ["Helloworld.Call"]
    assert response.api == pb.PublicAPI(
        id="id-helloworld",
        name="helloworld",
        display_name="helloworld",
        description="Greets",
        category="example",
        icon="https://icons.example/helloworld.png",
        open_api_json=stored.open_api_json,
        examples_json=stored.examples_json,
        pricing={"Helloworld.Call": 5},
        quotas={"Helloworld.Call": 100},
        owner_id="admin-1",
    )


async def test_api_without_a_name_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.api(pb.APIRequest(name=" "), call("API"))
    assert caught.value.to_dict() == {
        "id": "explore.api",
        "code": 400,
        "detail": "missing name",
        "status": "Bad Request",
    }


async def test_api_of_an_unknown_name_is_not_found(world: World) -> None:
    world.catalog(entry("helloworld"))
    with pytest.raises(NotFound) as caught:
        await world.handler.api(pb.APIRequest(name="nope"), call("API"))
    assert caught.value == NotFound("explore.api", "not found")


async def test_list_categories_returns_distinct_non_empty_categories_sorted(
    world: World,
) -> None:
    world.catalog(
        entry("a", category="storage"),
        entry("b", category="example"),
        entry("c"),
        entry("d", category="storage"),
    )
    response = await world.handler.list_categories(
        pb.ListCategoriesRequest(), call("ListCategories")
    )
    assert list(response.categories) == ["example", "storage"]


async def test_pricing_lists_every_endpoint_in_both_maps_without_changing_the_entry(
    world: World,
) -> None:
    stored = entry(
        "helloworld",
        endpoints=("Helloworld.Call", "Helloworld.Stream", "Helloworld.Hidden"),
        paths=("/helloworld/Call", "/helloworld/Stream"),
        display_name="Hello",
        pricing={"helloworld.stream": 10},
        quotas={"Helloworld.Stream": 100},
    )
    world.catalog(stored, entry("weather", paths=("/weather/Now",)))
    response = await world.handler.pricing(pb.PricingRequest(), call("Pricing"))

    assert list(response.prices) == [
        pb.PricingItem(
            name="helloworld",
            id="id-helloworld",
            display_name="Hello",
            icon="https://icons.example/helloworld.png",
            pricing={"Helloworld.Call": 0, "Helloworld.Hidden": 0, "helloworld.stream": 10},
            quotas={"Helloworld.Call": 0, "Helloworld.Hidden": 0, "Helloworld.Stream": 100},
        ),
        pb.PricingItem(
            name="weather",
            id="id-weather",
            display_name="weather",
            icon="https://icons.example/weather.png",
            pricing={"Weather.Now": 0},
            quotas={"Weather.Now": 0},
        ),
    ]
    assert dict(stored.pricing) == {"helloworld.stream": 10}
    api = (await world.handler.api(pb.APIRequest(name="helloworld"), call("API"))).api
    assert dict(api.pricing) == {"helloworld.stream": 10}
    assert dict(api.quotas) == {"Helloworld.Stream": 100}
