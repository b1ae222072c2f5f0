"""An API's usage endpoint: the method the gateway asks for a tenant's unit usage."""

from __future__ import annotations

import orjson
import pytest

from m3o.runtime.errors import BadRequest
from m3o.services.publicapi.entry import CatalogEntry
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from services.publicapi.support import World, api, call, compile_proto

ROWS_PROTO = """
syntax = "proto3";
package rows;

service Rows {
  rpc Create(CreateRequest) returns (CreateResponse);
  rpc Watch(CreateRequest) returns (stream CreateResponse);
}
service Admin {
  rpc Usage(UsageRequest) returns (UsageResponse);
  rpc Count(CreateRequest) returns (CreateResponse);
}
message CreateRequest { string name = 1; }
message CreateResponse {}
message UsageRequest { string tenant_id = 1; }
message Units { int64 usage = 1; string units = 2; }
message UsageResponse { map<string, Units> usage = 1; }
"""


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_proto(tmp_path_factory.mktemp("rows"), ROWS_PROTO, "rows/api.proto")


def _rows_api(descriptors: bytes, usage_endpoint: str) -> pb.PublicAPI:
    return api(
        "rows",
        upstream=pb.Upstream(address="rows:9090", protocol="grpc"),
        descriptors=descriptors,
        usage_endpoint=usage_endpoint,
    )


async def test_usage_endpoint_is_stored_as_the_descriptors_spell_it(
    world: World, rows: bytes
) -> None:
    published = await world.publish(_rows_api(rows, " admin.USAGE "))
    assert published.usage_endpoint == "Admin.Usage"
    got = await world.handler.get(pb.GetRequest(name="rows"), call("Get"))
    assert got.api.usage_endpoint == "Admin.Usage"
    assert CatalogEntry.from_proto(got.api).usage_endpoint == "Admin.Usage"


async def test_an_api_without_descriptors_may_name_any_usage_endpoint(world: World) -> None:
    entry = api(
        "weather",
        upstream=pb.Upstream(address="https://weather.example.com", protocol="http"),
        descriptors=b"",
        usage_endpoint="Admin.Usage",
    )
    assert (await world.publish(entry)).usage_endpoint == "Admin.Usage"


@pytest.mark.parametrize(
    ("usage_endpoint", "detail"),
    [
        ("Usage", "usage_endpoint 'Usage' is not <Service>.<Method>"),
        ("Admin.Missing", "usage_endpoint names Admin.Missing, which the API does not have"),
        ("Rows.Watch", "usage_endpoint Rows.Watch must not stream"),
        ("Admin.Count", "usage_endpoint Admin.Count must take a string tenant_id"),
    ],
)
async def test_an_unusable_usage_endpoint_is_bad_request(
    world: World, rows: bytes, usage_endpoint: str, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(_rows_api(rows, usage_endpoint))
    assert caught.value == BadRequest("publicapi.publish", detail)


async def test_update_sets_the_usage_endpoint_and_keeps_it_when_not_given(
    world: World, rows: bytes
) -> None:
    published = await world.publish(_rows_api(rows, ""))
    assert published.usage_endpoint == ""
    change = pb.PublicAPI(id=published.id, usage_endpoint="Admin.Usage")
    updated = await world.handler.update(pb.UpdateRequest(api=change), call("Update"))
    assert updated.api.usage_endpoint == "Admin.Usage"
    again = pb.PublicAPI(id=published.id, description="Rows")
    kept = await world.handler.update(pb.UpdateRequest(api=again), call("Update"))
    assert kept.api.usage_endpoint == "Admin.Usage"


async def test_the_generated_document_leaves_the_usage_endpoint_out(
    world: World, rows: bytes
) -> None:
    published = await world.publish(_rows_api(rows, "Admin.Usage"))
    paths = set(orjson.loads(published.open_api_json)["paths"])
    assert paths == {"/rows/Create", "/rows/Watch", "/rows/Admin/Count"}
