"""Helloworld's catalog entry: what the local profile publishes, and that publicapi takes it."""

from __future__ import annotations

import base64

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.helloworld.catalog import descriptor_set, publish_request
from m3o.services.helloworld.proto import helloworld_pb2
from m3o.services.publicapi.descriptors import Descriptors
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb

ADMIN = Account(id="platform", type="user", scopes=("admin",))


def test_the_entry_describes_helloworld_for_the_local_profile() -> None:
    api = publish_request().api
    assert api.name == "helloworld"
    assert api.display_name == "Helloworld"
    assert api.category == "example"
    assert "greets" in api.description
    assert api.upstream == publicapi_pb.Upstream(address="local:helloworld", protocol="grpc")
    assert dict(api.pricing) == {"Helloworld.Call": 0, "Helloworld.Stream": 10}
    assert dict(api.quotas) == {"Helloworld.Stream": 100}


def test_the_icon_is_a_small_svg_data_url() -> None:
    icon = publish_request().api.icon
    prefix = "data:image/svg+xml;base64,"
    assert icon.startswith(prefix)
    assert len(icon) < 2000
    assert base64.b64decode(icon[len(prefix) :]).startswith(b"<svg ")


def test_every_endpoint_has_an_example() -> None:
    examples = orjson.loads(publish_request().api.examples_json)
    assert set(examples) == {"call", "stream"}
    [call] = examples["call"]
    assert call["request"] == {"name": "Alice"}
    assert call["response"] == {"message": "Hello Alice"}
    [stream] = examples["stream"]
    assert stream["request"] == {"name": "Alice", "messages": 2}


def test_the_descriptors_are_those_of_the_helloworld_proto() -> None:
    raw = publish_request().api.descriptors
    assert raw == descriptor_set()
    parsed = Descriptors(raw)
    [file] = parsed.files.file
    assert file.name == helloworld_pb2.DESCRIPTOR.name
    assert [(e.name, e.server_streaming) for e in parsed.endpoints] == [
        ("Helloworld.Call", False),
        ("Helloworld.Stream", True),
    ]


async def test_publicapi_accepts_the_entry(engine: AsyncEngine, sessions: SessionFactory) -> None:
    async def no_reflection(address: str) -> bytes:
        raise AssertionError("helloworld's descriptors are given")

    handler = Publicapi(
        sessions=sessions,
        publisher=FakePublisher(),
        counters=SqlCounterStore(engine),
        fetch_descriptors=no_reflection,
    )
    ctx = CallContext(service="publicapi", method="Publish", account=ADMIN)
    published = (await handler.publish(publish_request(), ctx)).api
    assert published.name == "helloworld"
    assert published.owner_id == "platform"
    paths = orjson.loads(published.open_api_json)["paths"]
    assert set(paths) == {"/helloworld/Call", "/helloworld/Stream"}
    assert paths["/helloworld/Stream"]["post"]["x-stream"] == "server"
