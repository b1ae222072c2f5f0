"""The service definition: a served handler whose Get and List are public, and whose
answers to bad input are errors of the caller's making, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.errors import M3OError, Unauthorized
from m3o.runtime.rpc import InProcessTransport, StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.proto.client import SPEC, PublicapiClient
from m3o.services.publicapi.service import definition
from m3o.services.publicapi.tables import metadata
from services.publicapi.support import ADMIN, api
from support.services import AnonymousRefused, NoClients, TokenAccounts, dependencies, serve


async def served(engine: AsyncEngine, sessions: SessionFactory) -> InProcessTransport:
    parts = await definition.build(
        dependencies("publicapi", engine, sessions, clients=NoClients("publicapi"))
    )
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Publicapi)
    assert handler.public == frozenset({"Get", "List"})
    return serve(
        SPEC,
        handler.implementation,
        authenticator=TokenAccounts({"admin": ADMIN}),
        rules=AnonymousRefused(),
        public=handler.public,
    )


async def test_definition_serves_publish_to_admins_and_get_list_to_anyone(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "publicapi"
    assert definition.metadata is metadata
    transport = await served(engine, sessions)
    admin = PublicapiClient(transport, StaticToken("admin"))
    anonymous = PublicapiClient(transport)
    stale = PublicapiClient(transport, StaticToken("expired"))

    published = (await admin.publish(pb.PublishRequest(api=api()))).api
    with pytest.raises(Unauthorized):
        await anonymous.publish(pb.PublishRequest(api=api()))

    for client in (anonymous, stale):
        got = (await client.get(pb.GetRequest(name="helloworld"))).api
        assert got.id == published.id
        assert not got.HasField("upstream")
        listed = (await client.list(pb.ListRequest())).apis
        assert [a.id for a in listed] == [published.id]


BAD_REQUESTS: list[tuple[str, object]] = [
    ("Publish", pb.PublishRequest(api=api(name="x" * 10_000))),
    ("Publish", pb.PublishRequest(api=api(descriptors=b"\x0a\x05junk"))),
    ("Publish", pb.PublishRequest(api=api(descriptors=b"\x0a\x03\x0a\x01x\x0a\x03\x0a\x01x"))),
    ("Publish", pb.PublishRequest(api=api(open_api_json="\x00"))),
    ("Publish", pb.PublishRequest(api=api(icon="data:"))),
    ("Publish", pb.PublishRequest(api=api(pricing={"": 1}))),
    ("Publish", pb.PublishRequest(api=api(pricing={"A.B": -(2**62)}))),
    ("Publish", pb.PublishRequest(api=api(upstream=pb.Upstream(address="[:::1]:x")))),
    ("Publish", pb.PublishRequest(api=api(upstream=pb.Upstream(address="a" * 600 + ":1")))),
    ("Publish", pb.PublishRequest(api=api(upstream=pb.Upstream(address="https://", protocol="x")))),
    ("Publish", pb.PublishRequest(api=api(upstream=pb.Upstream(address="http:", protocol="http")))),
    ("Publish", pb.PublishRequest(api=api(description="d" * 200_000))),
    ("Publish", pb.PublishRequest(api=api(owner_id="o" * 300))),
    ("Publish", pb.PublishRequest(api=api(description="nul \x00"))),
    ("Publish", pb.PublishRequest(api=api(display_name="\x00"))),
    ("Publish", pb.PublishRequest(api=api(icon="https://x/\x00"))),
    ("Publish", pb.PublishRequest(api=api(upstream=pb.Upstream(address="dns:\x00")))),
    ("Publish", pb.PublishRequest(api=api(examples_json="[" * 5000 + "]" * 5000))),
    ("Update", pb.UpdateRequest(api=pb.PublicAPI(id="x" * 5000, name="n"))),
    ("Update", pb.UpdateRequest(api=pb.PublicAPI(id="\x00", name="n"))),
    ("Remove", pb.RemoveRequest(id="\x00")),
    ("Get", pb.GetRequest(id="x" * 5000)),
    ("Get", pb.GetRequest(name="\u0000" * 10)),
    ("Remove", pb.RemoveRequest(name="n" * 5000)),
]  # fmt: skip


@pytest.mark.parametrize(("method", "request_"), BAD_REQUESTS)
async def test_bad_input_is_an_error_of_the_caller_never_a_500(
    engine: AsyncEngine, sessions: SessionFactory, method: str, request_: pb.PublishRequest
) -> None:
    transport = await served(engine, sessions)
    with pytest.raises(M3OError) as caught:
        await transport.unary(
            SPEC,
            SPEC.methods[method],
            request_,
            metadata={"authorization": "Bearer admin"},
            timeout=10,
        )
    assert 400 <= caught.value.code < 500, caught.value
