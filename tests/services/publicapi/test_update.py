"""Update: set fields overwrite, renames move the entry, events and version."""

from __future__ import annotations

import orjson
import pytest

from m3o.events.publicapi import EventType
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, NotFound
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from services.publicapi.support import CUSTOMER, HELLOWORLD, World, api, call


async def update(world: World, entry: pb.PublicAPI) -> pb.PublicAPI:
    return (await world.handler.update(pb.UpdateRequest(api=entry), call("Update"))).api


async def test_update_overwrites_the_fields_that_are_set(world: World) -> None:
    first = await world.publish(
        api(description="old", category="example", icon="https://x.example/a.png",
            pricing={"Helloworld.Call": 1}, quotas={"Helloworld.Call": 5})
    )  # fmt: skip
    updated = await update(
        world,
        pb.PublicAPI(
            id=first.id,
            display_name="Hello World",
            icon="https://x.example/b.png",
            pricing={"Helloworld.Stream": 7},
        ),
    )

    assert updated.display_name == "Hello World"
    assert updated.icon == "https://x.example/b.png"
    assert updated.category == "example"
    assert updated.description == "old"
    assert dict(updated.pricing) == {"Helloworld.Stream": 7}
    assert dict(updated.quotas) == {"Helloworld.Call": 5}
    assert updated.created == first.created
    assert updated.updated > first.updated
    got = await world.handler.get(pb.GetRequest(id=first.id), call("Get"))
    assert got.api == updated
    assert world.events() == [(EventType.EventTypeAPIUpdate, "helloworld")]
    world.assert_all_in_transaction()
    assert await world.version() == 2


async def test_update_without_an_id_is_bad_request(world: World) -> None:
    for request in (pb.UpdateRequest(), pb.UpdateRequest(api=pb.PublicAPI(name="x"))):
        with pytest.raises(BadRequest) as caught:
            await world.handler.update(request, call("Update"))
        assert caught.value == BadRequest("publicapi.update", "Missing API ID")


async def test_update_of_an_unknown_id_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        await update(world, pb.PublicAPI(id="nope", description="x"))
    assert caught.value.to_dict() == {
        "id": "publicapi.update",
        "code": 404,
        "detail": "API not found with this ID",
        "status": "Not Found",
    }
    assert world.events() == []


async def test_update_needs_an_admin(world: World) -> None:
    first = await world.publish()
    with pytest.raises(Forbidden):
        await world.handler.update(
            pb.UpdateRequest(api=pb.PublicAPI(id=first.id, description="x")),
            call("Update", CUSTOMER),
        )


async def test_update_renames_move_the_entry_and_its_generated_paths(world: World) -> None:
    first = await world.publish()
    renamed = await update(world, pb.PublicAPI(id=first.id, name="Greeter"))

    assert renamed.id == first.id
    assert renamed.name == "greeter"
    by_name = await world.handler.get(pb.GetRequest(name="greeter"), call("Get"))
    assert by_name.api.id == first.id
    with pytest.raises(NotFound):
        await world.handler.get(pb.GetRequest(name="helloworld"), call("Get"))
    paths = set(orjson.loads(renamed.open_api_json)["paths"])
    # The service is no longer named like the API, but it is the only one.
    assert paths == {"/greeter/Call", "/greeter/Stream"}
    assert world.events() == [
        (EventType.EventTypeAPIDisable, "helloworld"),
        (EventType.EventTypeAPIUpdate, "greeter"),
    ]


async def test_update_renaming_to_a_taken_name_is_conflict(world: World) -> None:
    first = await world.publish()
    await world.publish(api("other"))
    with pytest.raises(Conflict) as caught:
        await update(world, pb.PublicAPI(id=first.id, name="other"))
    assert caught.value == Conflict("publicapi.update", "An API with this name exists")
    assert world.events() == []


async def test_update_that_changes_nothing_publishes_nothing(world: World) -> None:
    first = await world.publish(api(description="same"))
    again = await update(world, pb.PublicAPI(id=first.id, description="same"))
    assert again == first
    assert world.events() == []
    assert await world.version() == 1


async def test_update_with_new_descriptors_regenerates_a_generated_document(
    world: World, two_services: bytes
) -> None:
    first = await world.publish()
    updated = await update(world, pb.PublicAPI(id=first.id, descriptors=two_services))
    assert updated.descriptors == two_services
    assert updated.open_api_json != first.open_api_json
    assert "/helloworld/Greeter/Greet" in orjson.loads(updated.open_api_json)["paths"]


async def test_update_keeps_a_given_document_when_descriptors_change(
    world: World, two_services: bytes
) -> None:
    document = '{"paths": {}}'
    first = await world.publish(api(open_api_json=document))
    updated = await update(world, pb.PublicAPI(id=first.id, descriptors=two_services))
    assert updated.open_api_json == document


async def test_update_of_the_upstream_keeps_the_descriptors(world: World) -> None:
    first = await world.publish()
    updated = await update(
        world, pb.PublicAPI(id=first.id, upstream=pb.Upstream(address="10.1.1.1:50051"))
    )
    assert updated.upstream == pb.Upstream(address="10.1.1.1:50051", protocol="grpc")
    assert updated.descriptors == HELLOWORLD
    assert world.fetcher.asked == []


async def test_update_to_a_grpc_upstream_without_descriptors_fetches_them(world: World) -> None:
    first = await world.publish(
        api("weather", upstream=pb.Upstream(address="https://w.example", protocol="http"),
            descriptors=b"")
    )  # fmt: skip
    world.fetcher.descriptors["10.1.1.1:50051"] = HELLOWORLD
    updated = await update(
        world, pb.PublicAPI(id=first.id, upstream=pb.Upstream(address="10.1.1.1:50051"))
    )
    assert world.fetcher.asked == ["10.1.1.1:50051"]
    assert updated.descriptors == HELLOWORLD
    assert set(orjson.loads(updated.open_api_json)["paths"]) == {
        "/weather/Call",
        "/weather/Stream",
    }


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (pb.PublicAPI(icon="javascript:x"), "icon must be an https URL or a data:image URL"),
        (
            pb.PublicAPI(pricing={"Helloworld.Nope": 1}),
            "pricing names Helloworld.Nope, which the API does not have",
        ),
        (pb.PublicAPI(examples_json="[]"), "examples_json must be a JSON object"),
        (
            pb.PublicAPI(name="no way"),
            "API name must be lower-case letters, digits, '-' or '_' (not first)",
        ),
        (
            pb.PublicAPI(upstream=pb.Upstream(address="h:1", protocol="ftp")),
            "Upstream protocol must be grpc or http",
        ),
        (
            pb.PublicAPI(descriptors=b"\x01"),
            "Invalid descriptors: descriptors are not a serialized FileDescriptorSet",
        ),
    ],
)
async def test_update_with_bad_fields_is_bad_request_and_changes_nothing(
    world: World, change: pb.PublicAPI, detail: str
) -> None:
    first = await world.publish()
    change.id = first.id
    with pytest.raises(BadRequest) as caught:
        await update(world, change)
    assert caught.value == BadRequest("publicapi.update", detail)
    got = await world.handler.get(pb.GetRequest(id=first.id), call("Get"))
    assert got.api == first
    assert world.events() == []
