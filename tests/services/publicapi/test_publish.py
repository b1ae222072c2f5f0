"""Publish: validation, upsert by name, owner, upstream and descriptors, events, version."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from m3o.events.publicapi import EventType
from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized, Unavailable
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from services.publicapi.support import (
    ADMIN,
    CUSTOMER,
    HELLOWORLD,
    SERVICE,
    START,
    FakeFetcher,
    World,
    api,
    call,
)


async def test_publish_stores_a_new_entry_and_publishes_api_enable(world: World) -> None:
    entry = api(description="Greets", category="example", pricing={"Helloworld.Stream": 10})
    published = (await world.handler.publish(pb.PublishRequest(api=entry), call("Publish"))).api

    assert uuid.UUID(published.id).version == 4
    assert published.name == "helloworld"
    assert published.display_name == "helloworld"
    assert published.owner_id == ADMIN.id
    assert published.description == "Greets"
    assert published.category == "example"
    assert dict(published.pricing) == {"Helloworld.Stream": 10}
    assert published.upstream == pb.Upstream(address="local:helloworld", protocol="grpc")
    assert published.descriptors == HELLOWORLD
    assert published.created == published.updated == int(START.timestamp()) + 1
    assert [(e.name, e.server_streaming, e.client_streaming) for e in published.endpoints] == [
        ("Helloworld.Call", False, False),
        ("Helloworld.Stream", True, False),
    ]
    document = orjson.loads(published.open_api_json)
    assert set(document["paths"]) == {"/helloworld/Call", "/helloworld/Stream"}
    got = await world.handler.get(pb.GetRequest(id=published.id), call("Get"))
    assert got.api == published
    assert world.events() == [(EventType.EventTypeAPIEnable, "helloworld")]
    world.assert_all_in_transaction()
    assert await world.version() == 1


async def test_publish_of_an_existing_name_keeps_its_id_and_publishes_api_update(
    world: World,
) -> None:
    first = await world.publish(api(description="one", quotas={"Helloworld.Call": 5}))
    again = (
        await world.handler.publish(
            pb.PublishRequest(api=api("HelloWorld", description="two")), call("Publish")
        )
    ).api

    assert again.id == first.id
    assert again.created == first.created
    assert again.updated > first.updated
    assert again.description == "two"
    assert dict(again.quotas) == {}
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert [a.id for a in listed.apis] == [first.id]
    assert world.events() == [(EventType.EventTypeAPIUpdate, "helloworld")]
    world.assert_all_in_transaction()
    assert await world.version() == 2


@pytest.mark.parametrize(
    "request_",
    [pb.PublishRequest(), pb.PublishRequest(api=api("")), pb.PublishRequest(api=api("   "))],
    ids=["no-api", "empty-name", "blank-name"],
)
async def test_publish_without_a_name_is_bad_request(
    world: World, request_: pb.PublishRequest
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.publish(request_, call("Publish"))
    assert caught.value.to_dict() == {
        "id": "publicapi.publish",
        "code": 400,
        "detail": "Missing API name",
        "status": "Bad Request",
    }
    assert world.events() == []
    assert await world.version() == 0


async def test_publish_needs_an_admin_or_a_service(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.handler.publish(pb.PublishRequest(api=api()), call("Publish", CUSTOMER))
    with pytest.raises(Unauthorized):
        await world.handler.publish(pb.PublishRequest(api=api()), call("Publish", None))
    assert world.events() == []
    published = (
        await world.handler.publish(pb.PublishRequest(api=api()), call("Publish", SERVICE))
    ).api
    assert published.owner_id == SERVICE.id


async def test_publish_keeps_a_given_owner_and_display_name(world: World) -> None:
    published = await world.publish(api(owner_id="cust-9", display_name="Hello World"))
    assert published.owner_id == "cust-9"
    assert published.display_name == "Hello World"


@pytest.mark.parametrize("name", ["hello world", "héllo", "-hello", "a/b", "x" * 65, "a.b"])
async def test_publish_with_a_name_that_is_no_url_segment_is_bad_request(
    world: World, name: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.publish(pb.PublishRequest(api=api(name)), call("Publish"))
    assert caught.value.id == "publicapi.publish"
    assert "API name" in caught.value.detail


async def test_publish_keeps_a_given_openapi_document(world: World) -> None:
    document = '{"openapi": "3.0.0", "paths": {"/helloworld/Call": {}}}'
    published = await world.publish(api(open_api_json=document))
    assert published.open_api_json == document


@pytest.mark.parametrize("field", ["open_api_json", "examples_json", "postman_json"])
@pytest.mark.parametrize(
    ("value", "detail"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
async def test_publish_with_a_document_that_is_no_json_object_is_bad_request(
    world: World, field: str, value: str, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(**{field: value}))
    assert caught.value == BadRequest("publicapi.publish", f"{field} {detail}")


@pytest.mark.parametrize(
    "icon",
    ["https://example.com/icon.png", "http://example.com/i.svg", "data:image/png;base64,iVBORw0="],
)
async def test_publish_accepts_web_and_data_image_icons(world: World, icon: str) -> None:
    assert (await world.publish(api(icon=icon))).icon == icon


@pytest.mark.parametrize(
    "icon", ["javascript:alert(1)", "icon.png", "data:text/html,<b>x</b>", "ftp://x/y"]
)
async def test_publish_with_another_icon_is_bad_request(world: World, icon: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(icon=icon))
    assert caught.value.detail == "icon must be an https URL or a data:image URL"


async def test_publish_of_a_grpc_upstream_without_descriptors_fetches_them_by_reflection(
    world: World,
) -> None:
    world.fetcher.descriptors["10.0.0.7:9000"] = HELLOWORLD
    entry = api(upstream=pb.Upstream(address="10.0.0.7:9000"), descriptors=b"")
    published = await world.publish(entry)
    assert world.fetcher.asked == ["10.0.0.7:9000"]
    assert published.upstream == pb.Upstream(address="10.0.0.7:9000", protocol="grpc")
    assert published.descriptors == HELLOWORLD
    assert [e.name for e in published.endpoints] == ["Helloworld.Call", "Helloworld.Stream"]


async def test_publish_of_an_unreachable_grpc_upstream_is_bad_request_naming_it(
    world: World,
) -> None:
    entry = api(upstream=pb.Upstream(address="10.0.0.8:9000"), descriptors=b"")
    with pytest.raises(BadRequest) as caught:
        await world.publish(entry)
    assert caught.value == BadRequest("publicapi.publish", "Upstream 10.0.0.8:9000 is unreachable")
    assert world.events() == []


async def test_publish_with_given_descriptors_does_not_ask_the_upstream(world: World) -> None:
    await world.publish(api(upstream=pb.Upstream(address="10.0.0.7:9000")))
    assert world.fetcher.asked == []


async def test_publish_of_a_local_upstream_without_descriptors_is_bad_request(
    world: World,
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(descriptors=b""))
    assert caught.value.detail == "Descriptors are required for upstream local:helloworld"
    assert world.fetcher.asked == []


async def test_publish_of_an_http_upstream_without_descriptors_has_no_generated_document(
    world: World,
) -> None:
    entry = api(
        "weather",
        upstream=pb.Upstream(address="https://weather.example.com/api/", protocol="HTTP"),
        descriptors=b"",
        pricing={"Weather.Forecast": 20},
    )
    published = await world.publish(entry)
    assert published.upstream == pb.Upstream(
        address="https://weather.example.com/api", protocol="http"
    )
    assert published.open_api_json == ""
    assert list(published.endpoints) == []
    assert dict(published.pricing) == {"Weather.Forecast": 20}
    assert world.fetcher.asked == []


@pytest.mark.parametrize(
    ("upstream", "detail"),
    [
        (pb.Upstream(), "Missing upstream address"),
        (pb.Upstream(address="  "), "Missing upstream address"),
        (pb.Upstream(address="h:1", protocol="soap"), "Upstream protocol must be grpc or http"),
        (
            pb.Upstream(address="no-port"),
            "Upstream address 'no-port' is not host:port (grpc upstreams)",
        ),
        (
            pb.Upstream(address="h:99999"),
            "Upstream address 'h:99999' is not host:port (grpc upstreams)",
        ),
        (
            pb.Upstream(address="http://h:80"),
            "Upstream address 'http://h:80' is not host:port (grpc upstreams)",
        ),
        (
            pb.Upstream(address="h:80", protocol="http"),
            "Upstream address 'h:80' is not an http:// or https:// base URL",
        ),
        (
            pb.Upstream(address="https://h/?q=1", protocol="http"),
            "Upstream address 'https://h/?q=1' is not an http:// or https:// base URL",
        ),
        (pb.Upstream(address="local:Bad Name"), "Upstream address is invalid"),
        (
            pb.Upstream(address="local:x", protocol="http"),
            "A local upstream is local:<service> with protocol grpc",
        ),
    ],
)
async def test_publish_with_an_unusable_upstream_is_bad_request(
    world: World, upstream: pb.Upstream, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(upstream=upstream))
    assert caught.value == BadRequest("publicapi.publish", detail)


@pytest.mark.parametrize("address", ["dns:///hello.svc:443", "unix:/run/hello.sock", "[::1]:50051"])
async def test_publish_accepts_grpc_targets(world: World, address: str) -> None:
    published = await world.publish(api(upstream=pb.Upstream(address=address)))
    assert published.upstream.address == address


@pytest.mark.parametrize(
    ("descriptors", "detail"),
    [
        (
            b"\xff\xff\xff",
            "Invalid descriptors: descriptors are not a serialized FileDescriptorSet",
        ),
        (b"", "Descriptors are required for upstream local:helloworld"),
    ],
)
async def test_publish_with_unusable_descriptors_is_bad_request(
    world: World, descriptors: bytes, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(descriptors=descriptors))
    assert caught.value == BadRequest("publicapi.publish", detail)


@pytest.mark.parametrize(
    ("field", "prices", "detail"),
    [
        (
            "pricing",
            {"Helloworld.Nope": 1},
            "pricing names Helloworld.Nope, which the API does not have",
        ),
        ("quotas", {"Helloworld.Call": -1}, "quotas of Helloworld.Call must not be negative"),
        ("pricing", {"Call": 1}, "pricing key 'Call' is not <Service>.<Method>"),
        (
            "pricing",
            {"Helloworld.Call": 1, "helloworld.call": 2},
            "pricing names helloworld.call twice (keys ignore case)",
        ),
    ],
)
async def test_publish_with_unusable_prices_is_bad_request(
    world: World, field: str, prices: dict[str, int], detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.publish(api(**{field: prices}))
    assert caught.value == BadRequest("publicapi.publish", detail)


async def test_a_price_key_that_names_no_endpoint_the_gateway_could_call_is_bad_request(
    world: World,
) -> None:
    entry = api(
        "weather",
        upstream=pb.Upstream(address="https://weather.example.com/api", protocol="http"),
        descriptors=b"",
        pricing={"Weather.Forecast\n": 20},
    )
    with pytest.raises(BadRequest) as caught:
        await world.publish(entry)
    assert caught.value == BadRequest(
        "publicapi.publish", "pricing key 'Weather.Forecast\\n' is not <Service>.<Method>"
    )


async def test_publish_matches_price_keys_to_endpoints_ignoring_case(world: World) -> None:
    published = await world.publish(api(pricing={"helloworld.STREAM": 3}))
    assert dict(published.pricing) == {"helloworld.STREAM": 3}


async def test_concurrent_publishes_of_one_name_give_one_entry(world: World) -> None:
    results = await asyncio.gather(
        *(
            world.handler.publish(pb.PublishRequest(api=api(description=str(i))), call("Publish"))
            for i in range(4)
        )
    )
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert len(listed.apis) == 1
    assert {r.api.id for r in results} == {listed.apis[0].id}
    kinds = [kind for kind, _ in world.events()]
    assert kinds.count(EventType.EventTypeAPIEnable) == 1
    assert kinds.count(EventType.EventTypeAPIUpdate) == 3


class BrokenCounters:
    async def incr(self, key: str, amount: int = 1, **_: object) -> int:
        raise Unavailable("counters", "Counter store unavailable")


async def test_publish_succeeds_when_the_version_cannot_be_raised(
    sessions: SessionFactory,
) -> None:
    publisher = FakePublisher()
    handler = Publicapi(
        sessions=sessions,
        publisher=publisher,
        counters=BrokenCounters(),  # type: ignore[arg-type]
        fetch_descriptors=FakeFetcher(),
    )
    published = (await handler.publish(pb.PublishRequest(api=api()), call("Publish"))).api
    got = await handler.get(pb.GetRequest(name="helloworld"), call("Get"))
    assert got.api == published
    assert len(publisher.published) == 1
