"""The dispatcher and both transports behave alike: results, errors, auth, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.errors import (
    BadRequest,
    DeadlineExceeded,
    Forbidden,
    Internal,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.logging import request_context
from m3o.runtime.rpc import (
    Dispatcher,
    GrpcTransport,
    InProcessTransport,
    StaticToken,
    Transport,
)
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto import helloworld_pb2 as pb
from m3o.services.helloworld.proto.client import SPEC, HelloworldClient
from support.services import grpc_channel_to


class TokenAuthenticator:
    async def authenticate(self, token: str) -> Account:
        if token != "good":
            raise Unauthorized("auth", "Unauthorized")
        return Account(id="u1", type="customer", scopes=("customer",))


class OnlyAccounts:
    """Rules: any account may call; anonymous callers may not."""

    async def verify(self, account: Account | None, service: str, endpoint: str) -> None:
        self.seen.append(endpoint)
        if account is None:
            raise Unauthorized(service, "Unauthorized")
        if account.id == "banned":
            raise Forbidden(service, "Forbidden")

    def __init__(self) -> None:
        self.seen: list[str] = []


class Misbehaving(Helloworld):
    seen: list[CallContext]

    def __init__(self) -> None:
        self.seen = []
        self.logged_request_ids: list[str | None] = []

    async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
        self.seen.append(ctx)
        self.logged_request_ids.append(structlog.contextvars.get_contextvars().get("request_id"))
        if request.name == "crash":
            raise RuntimeError("database password is hunter2")
        if request.name == "bad":
            raise BadRequest(ctx.endpoint, "Name is bad")
        if request.name == "slow":
            await asyncio.sleep(5)
        if request.name == "timeout":
            raise TimeoutError
        request.name = "mutated"
        return pb.CallResponse(message=f"Hello {request.name}")


@pytest.fixture(params=["inprocess", "grpc"])
async def transport_and_handler(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Transport, Misbehaving]]:
    handler = Misbehaving()
    dispatcher = Dispatcher(SPEC, handler, authenticator=TokenAuthenticator(), rules=OnlyAccounts())
    if request.param == "inprocess":
        local = InProcessTransport()
        local.register(dispatcher)
        yield local, handler
        return
    async with grpc_channel_to(dispatcher) as channel:
        yield GrpcTransport(channel), handler


async def test_call_returns_the_handlers_response_and_passes_the_account(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, handler = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    request = pb.CallRequest(name="Alice")
    response = await client.call(request)
    assert response.message == "Hello mutated"
    assert request.name == "Alice"  # the handler's change never reaches the caller
    assert handler.seen[0].account == Account(id="u1", type="customer", scopes=("customer",))
    assert handler.seen[0].endpoint == "helloworld.call"


async def test_the_callers_request_id_reaches_the_handler_and_its_log_lines(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, handler = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    with request_context("req-42"):
        await client.call(pb.CallRequest(name="Alice"))
    await client.call(pb.CallRequest(name="Bob"))  # outside any request
    assert handler.seen[0].metadata["x-request-id"] == "req-42"
    assert "x-request-id" not in handler.seen[1].metadata
    assert handler.logged_request_ids == ["req-42", None]
    assert structlog.contextvars.get_contextvars().get("request_id") is None


async def test_handler_error_kind_and_detail_reach_the_caller(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    with pytest.raises(BadRequest) as caught:
        await client.call(pb.CallRequest(name="bad"))
    assert caught.value.to_dict() == {
        "id": "helloworld.call",
        "code": 400,
        "detail": "Name is bad",
        "status": "Bad Request",
    }


async def test_crash_becomes_generic_internal_error_without_details(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    with pytest.raises(Internal) as caught:
        await client.call(pb.CallRequest(name="crash"))
    assert "hunter2" not in caught.value.detail
    assert caught.value.id == "helloworld.call"


async def test_anonymous_call_is_unauthorized_and_bad_token_too(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, handler = transport_and_handler
    with pytest.raises(Unauthorized):
        await HelloworldClient(transport).call(pb.CallRequest(name="x"))
    with pytest.raises(Unauthorized):
        await HelloworldClient(transport, StaticToken("forged")).call(pb.CallRequest(name="x"))
    assert handler.seen == []


async def test_deadline_is_enforced(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"), timeout=0.2)
    with pytest.raises(Unavailable):
        await client.call(pb.CallRequest(name="slow"))


@pytest.mark.parametrize(
    ("name", "timeout"),
    [("slow", 0.2), ("timeout", 10.0)],
    ids=["the-caller's-deadline", "the-handler-timing-out"],
)
async def test_a_passed_deadline_is_deadline_exceeded_with_the_usual_document(
    transport_and_handler: tuple[Transport, Misbehaving], name: str, timeout: float
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"), timeout=timeout)
    with pytest.raises(DeadlineExceeded) as caught:
        await client.call(pb.CallRequest(name=name))
    assert caught.value.to_dict() == {
        "id": "helloworld.call",
        "code": 503,
        "detail": "Deadline exceeded",
        "status": "Service Unavailable",
    }


async def test_server_stream_yields_every_message(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    got = [m.message async for m in client.stream(pb.StreamRequest(name="Bo", messages=3))]
    assert got == ["Hello Bo"] * 3


async def test_server_stream_error_reaches_the_caller(
    transport_and_handler: tuple[Transport, Misbehaving],
) -> None:
    transport, _ = transport_and_handler
    client = HelloworldClient(transport, StaticToken("good"))
    with pytest.raises(BadRequest):
        async for _ in client.stream(pb.StreamRequest(name="Bo", messages=-1)):
            pass


def test_dispatcher_refuses_a_handler_missing_methods() -> None:
    class Half:
        async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
            return pb.CallResponse()

    with pytest.raises(TypeError, match="stream"):
        Dispatcher(SPEC, Half(), authenticator=None, rules=None)


async def test_public_method_treats_a_stale_token_as_anonymous() -> None:
    seen: list[CallContext] = []

    class Public(Helloworld):
        async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
            seen.append(ctx)
            return pb.CallResponse(message="hi")

    local = InProcessTransport()
    local.register(
        Dispatcher(
            SPEC,
            Public(),
            authenticator=TokenAuthenticator(),
            rules=OnlyAccounts(),
            public=frozenset({"Call"}),
        )
    )
    response = await HelloworldClient(local, StaticToken("expired")).call(pb.CallRequest())
    assert response.message == "hi"
    assert seen[0].account is None
    with pytest.raises(Unauthorized):  # non-public methods still refuse the token
        async for _ in HelloworldClient(local, StaticToken("expired")).stream(pb.StreamRequest()):
            pass
