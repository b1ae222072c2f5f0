"""Index: summaries sorted by name, their endpoints, paging."""

from __future__ import annotations

import pytest

from m3o.runtime.errors import BadRequest
from m3o.services.explore.proto import explore_pb2 as pb
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from services.explore.support import World, call, entry


def names(response: pb.IndexResponse | pb.SearchResponse) -> list[str]:
    return [api.name for api in response.apis]


async def test_index_returns_summaries_sorted_by_name(world: World) -> None:
    world.catalog(
        entry("zeta", endpoints=("Zeta.Run",)),
        entry(
            "helloworld",
            endpoints=("Helloworld.Call", "Helloworld.Stream"),
            category="example",
            description="Greets",
            display_name="Hello World",
        ),
    )
    response = await world.handler.index(pb.IndexRequest(), call("Index"))

    assert names(response) == ["helloworld", "zeta"]
    assert response.apis[0] == pb.ExploreAPI(
        name="helloworld",
        display_name="Hello World",
        description="Greets",
        category="example",
        icon="https://icons.example/helloworld.png",
        endpoints=[pb.Endpoint(name="Helloworld.Call"), pb.Endpoint(name="Helloworld.Stream")],
    )
    assert world.publicapi.list.calls == [publicapi_pb.ListRequest(omit_descriptors=True)]


async def test_summary_endpoints_are_those_declared_and_documented(world: World) -> None:
    world.catalog(
        entry(
            "helloworld",
            endpoints=("Helloworld.Call", "Helloworld.Secret", "Admin.Reset"),
            paths=("/helloworld/Call", "/helloworld/Ghost", "/v1/helloworld/Admin/Reset",
                   "/other/Secret", "/"),
        )
    )  # fmt: skip
    [summary] = (await world.handler.index(pb.IndexRequest(), call("Index"))).apis
    assert [e.name for e in summary.endpoints] == ["Admin.Reset", "Helloworld.Call"]


async def test_summary_endpoints_of_an_api_without_descriptors_are_its_documented_ones(
    world: World,
) -> None:
    world.catalog(entry("weather", paths=("/weather/Now", "/weather/Forecast", "/weather/Now")))
    [summary] = (await world.handler.index(pb.IndexRequest(), call("Index"))).apis
    assert [e.name for e in summary.endpoints] == ["Weather.Forecast", "Weather.Now"]


async def test_summary_endpoints_ignore_a_document_that_is_not_openapi(world: World) -> None:
    broken = entry("helloworld", endpoints=("Helloworld.Call",))
    broken.open_api_json = "not json"
    listed = entry("listed", endpoints=("Listed.Call",))
    listed.open_api_json = '{"paths": []}'
    world.catalog(broken, listed)
    response = await world.handler.index(pb.IndexRequest(), call("Index"))
    assert [list(api.endpoints) for api in response.apis] == [[], []]


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        (0, 0, ["a", "b", "c", "d"]),
        (2, 0, ["a", "b"]),
        (2, 1, ["b", "c"]),
        (10, 3, ["d"]),
        (0, 2, ["c", "d"]),
        (1, 4, []),
        (5, 100, []),
    ],
)
async def test_index_pages_with_limit_and_offset(
    world: World, limit: int, offset: int, expected: list[str]
) -> None:
    world.catalog(*(entry(n) for n in "dcab"))
    request = pb.IndexRequest(limit=limit, offset=offset)
    assert names(await world.handler.index(request, call("Index"))) == expected


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.IndexRequest(limit=-1), "limit must not be negative"),
        (pb.IndexRequest(offset=-1), "offset must not be negative"),
    ],
)
async def test_index_with_a_negative_limit_or_offset_is_bad_request(
    world: World, request_: pb.IndexRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.index(request_, call("Index"))
    assert caught.value == BadRequest("explore.index", detail)
    assert world.publicapi.list.call_count == 0
