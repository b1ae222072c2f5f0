"""The public API's single route: every path reaches what the routes listed one by one
reached, and paths outside ``/v1/`` are left to the application's other routes."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, NoMatchFound, Route, WebSocketRoute
from starlette.websockets import WebSocket

from m3o.gateway.v1.public_route import PublicApiRoute


def _answer(name: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {request.method} {request.scope['path']}")

    return endpoint


async def _websocket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"websocket {websocket.scope['path_params']['path']}")
    await websocket.close()


def _public() -> PublicApiRoute:
    return PublicApiRoute(
        {
            "/v1/api/keys/list": Route(
                "/v1/api/keys/list", _answer("keys"), methods=["GET", "POST"], name="keys"
            )
        },
        Route("/v1/{path:path}", _answer("call"), methods=["GET", "POST", "PUT"], name="call"),
        WebSocketRoute("/v1/{path:path}", _websocket, name="websocket"),
    )


def _app() -> Starlette:
    return Starlette(
        routes=[
            _public(),
            Route("/v1", _answer("bare"), methods=["GET"]),
            Route("/{service}/{endpoint}", _answer("platform"), methods=["GET", "POST"]),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "answer"),
    [
        ("POST", "/v1/api/keys/list", "keys POST /v1/api/keys/list"),
        ("GET", "/v1/api/keys/list", "keys GET /v1/api/keys/list"),
        # A method the key path does not take goes to the call endpoint (which says 405).
        ("PUT", "/v1/api/keys/list", "call PUT /v1/api/keys/list"),
        ("POST", "/v1/api/keys/list/", "call POST /v1/api/keys/list/"),
        ("POST", "/v1/helloworld/call", "call POST /v1/helloworld/call"),
        ("GET", "/v1/", "call GET /v1/"),
        # Outside /v1/: the other routes.
        ("GET", "/v1", "bare GET /v1"),
        ("POST", "/v1x/call", "platform POST /v1x/call"),
        ("POST", "/customers/read", "platform POST /customers/read"),
    ],
)
async def test_each_path_reaches_the_route_it_reached_before(
    method: str, path: str, answer: str
) -> None:
    async with _client() as client:
        response = await client.request(method, path)
    assert response.status_code == 200
    assert response.text == answer


async def test_a_method_no_route_takes_is_405_from_the_call_route() -> None:
    async with _client() as client:
        response = await client.request("DELETE", "/v1/helloworld/call")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "PUT"}


@pytest.mark.parametrize("path", ["/v1/helloworld/stream", "/v1/api/keys/list"])
def test_websockets_on_any_public_path_reach_the_websocket_endpoint(path: str) -> None:
    match, child = _public().matches(
        {"type": "websocket", "path": path, "root_path": "", "headers": []}
    )
    assert match is Match.FULL
    assert child["endpoint"] is _websocket
    assert child["path_params"] == {"path": path.removeprefix("/v1/")}


def test_other_scopes_and_paths_do_not_match() -> None:
    public = _public()
    assert public.matches({"type": "lifespan"})[0] is Match.NONE
    for path in ("/v1", "/v1x/call", "/customers/read"):
        scope = {"type": "websocket", "path": path, "root_path": "", "headers": []}
        assert public.matches(scope)[0] is Match.NONE


async def test_a_root_path_is_left_out_of_the_match() -> None:
    transport = httpx.ASGITransport(app=_app(), root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/api/v1/api/keys/list")
    assert response.text == "keys POST /api/v1/api/keys/list"


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test")


def test_urls_are_built_from_the_routes_it_stands_for() -> None:
    app = _app()
    assert app.url_path_for("keys") == "/v1/api/keys/list"
    assert app.url_path_for("call", path="helloworld/call") == "/v1/helloworld/call"
    with pytest.raises(NoMatchFound):
        app.url_path_for("nothing")


def test_only_paths_under_v1_can_be_listed() -> None:
    with pytest.raises(ValueError, match="/keys/list"):
        PublicApiRoute(
            {"/keys/list": Route("/keys/list", _answer("keys"))},
            Route("/v1/{path:path}", _answer("call")),
            WebSocketRoute("/v1/{path:path}", _websocket),
        )
