"""What the public API accepts as a request: JSON bodies only, nesting bounded, no NUL
characters, over HTTP and in websocket frames. A refused request is a clear 4xx in M3O's
format, reaches no upstream and costs nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.v1.servers import serve_app
from gateway.v1.support import CUSTOMER, KEY, Catalog, entry, gateway, hello_entry
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters import CounterStore

AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {**AUTH, "Content-Type": "application/json"}
MAX_DEPTH = 64  # the documented limit (m3o.gateway.payload.MAX_DEPTH)
TOO_DEEP = f"Request is nested too deeply (at most {MAX_DEPTH} levels)"
HAS_NUL = "Request must not contain NUL characters"


def _error(code: int, detail: str, status: str) -> dict[str, Any]:
    return {"id": "v1", "code": code, "detail": detail, "status": status}


def _nested(depth: int) -> bytes:
    inner = depth - 1
    return b'{"name":"x","extra":' + b"[" * inner + b"]" * inner + b"}"


class Echo:
    """An HTTP upstream without descriptors: answers the request it received."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(body)
        return Response(body or b"{}", media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{service}/{method}", self.handle, methods=["POST"])])


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    upstream = Echo()
    async with serve_app(upstream.app()) as address:
        yield upstream, f"http://{address}"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 2000])
async def test_deeply_nested_body_is_bad_request_and_costs_nothing(
    counters: CounterStore, depth: int
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", content=_nested(depth), headers=JSON)
    assert response.status_code == 400
    assert response.json() == _error(400, TOO_DEEP, "Bad Request")
    assert gw.hello.seen == []
    assert await gw.count("total") == 0
    assert await gw.events() == []


async def test_deep_body_for_an_http_upstream_is_bad_request_not_a_crash(
    counters: CounterStore, echo: tuple[Echo, str]
) -> None:
    upstream, address = echo
    api = entry("echo", address, protocol="http")
    gw = gateway(counters, catalog=Catalog(api), balances={CUSTOMER: 100})
    try:
        async with gw.http() as http:
            deep = await http.post("/v1/echo/call", content=_nested(300), headers=JSON)
            fits = await http.post("/v1/echo/call", content=_nested(MAX_DEPTH), headers=JSON)
    finally:
        await gw.v1.calls.forwarders.close()
    assert deep.status_code == 400
    assert deep.json() == _error(400, TOO_DEEP, "Bad Request")
    assert fits.status_code == 200
    assert len(upstream.received) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/helloworld/call", b'{"name": "a\\u0000b"}'),
        ("/v1/helloworld/call", b'{"name": "x", "extra": {"k\\u0000": ["v"]}}'),
        ("/v1/helloworld/call?name=a%00b", b""),
    ],
)
async def test_nul_character_is_bad_request_and_costs_nothing(
    counters: CounterStore, path: str, body: bytes
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post(path, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == _error(400, HAS_NUL, "Bad Request")
    assert gw.hello.seen == []
    assert await gw.count("total") == 0


async def test_body_over_the_limit_is_413_and_costs_nothing(counters: CounterStore) -> None:
    gw = gateway(counters, settings=PublicAPISettings(max_body_bytes=64))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "'
        yield b"x" * 100
        yield b'"}'

    async with gw.http() as http:
        declared = await http.post("/v1/helloworld/call", json={"name": "x" * 100}, headers=AUTH)
        streamed = await http.post("/v1/helloworld/call", content=chunks(), headers=JSON)
    assert declared.status_code == streamed.status_code == 413
    too_large = _error(413, "Request body too large", "Request Entity Too Large")
    assert declared.json() == streamed.json() == too_large
    assert gw.hello.seen == []
    assert await gw.count("total") == 0
    assert await gw.events() == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_body_not_declared_as_json_is_415_and_costs_nothing(
    counters: CounterStore, content_type: str | None
) -> None:
    gw = gateway(counters)
    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", content=b'{"name":"x"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == _error(
        415, "Content-Type must be application/json", "Unsupported Media Type"
    )
    assert gw.hello.seen == []
    assert await gw.count("total") == 0


async def test_json_body_and_bodiless_get_are_calls(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        posted = await http.post(
            "/v1/helloworld/call",
            content=b'{"name":"A"}',
            headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
        )
        got = await http.get("/v1/helloworld/call?name=B", headers=AUTH)
    assert posted.json() == {"message": "Hello A"}
    assert got.json() == {"message": "Hello B"}


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        (_nested(MAX_DEPTH + 1).decode(), TOO_DEEP),
        (_nested(2000).decode(), TOO_DEEP),
        ('{"name": "a\\u0000b"}', HAS_NUL),
    ],
)
async def test_websocket_request_frame_is_bounded_like_a_body(
    counters: CounterStore, frame: str, detail: str
) -> None:
    gw = gateway(counters, catalog=Catalog(hello_entry()), balances={CUSTOMER: 100})
    async with (
        serve_app(gw.app) as address,
        connect(f"ws://{address}/v1/helloworld/call", additional_headers=AUTH) as ws,
    ):
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    reason = orjson.loads(ws.close_reason or "{}")
    assert (ws.close_code, reason["detail"]) == (4400, detail)
    assert gw.hello.seen == []
    assert await gw.count("total") == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/api/keys/list", "/v1/api/apis/list"])
async def test_key_management_paths_take_post_and_get_only(
    counters: CounterStore, method: str, path: str
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.request(method, path, headers={"Authorization": "Bearer jwt"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
