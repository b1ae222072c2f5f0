"""The application as a whole: public surface, CORS, lifespan, extra routes, access log."""

from __future__ import annotations

import uuid

import pytest
import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from structlog.testing import capture_logs

import m3o.gateway
from gateway.support import HELLO, Recorder, Served, build_app, client_for
from m3o.gateway import GatewaySettings
from m3o.runtime.logging import current_request_id


def test_public_surface_is_pinned() -> None:
    assert sorted(m3o.gateway.__all__) == [
        "DEFAULT_MAX_BODY_BYTES",
        "GatewaySettings",
        "Hook",
        "Metrics",
        "ReadinessCheck",
        "ServiceDirectory",
        "create_app",
        "directory",
        "title",
    ]


async def test_cors_is_off_by_default() -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]))
    async with client_for(app) as http:
        response = await http.post(
            "/helloworld/call", json={}, headers={"Origin": "https://console.example.com"}
        )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_configured_origins_only() -> None:
    settings = GatewaySettings(cors_origins=["https://console.example.com"])
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]), settings=settings)
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with client_for(app) as http:
        allowed = await http.options(
            "/helloworld/call",
            headers={"Origin": "https://console.example.com", **preflight_headers},
        )
        refused = await http.options(
            "/helloworld/call", headers={"Origin": "https://evil.example.com", **preflight_headers}
        )
        simple = await http.post(
            "/helloworld/call", json={}, headers={"Origin": "https://console.example.com"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert simple.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "x-request-id" in simple.headers["access-control-expose-headers"]


async def test_lifespan_runs_start_hooks_in_order_and_stop_hooks_in_reverse() -> None:
    events: list[str] = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            events.append(name)

        return run

    app, _ = build_app(
        Served(HELLO, Recorder()),
        on_startup=[hook("open pool"), hook("start consumers")],
        on_shutdown=[hook("close pool"), hook("stop consumers")],
    )
    async with app.router.lifespan_context(app):
        assert events == ["open pool", "start consumers"]
    assert events[2:] == ["stop consumers", "close pool"]


async def test_extra_routes_come_before_the_platform_routes() -> None:
    async def webhook(request: Request) -> Response:
        return PlainTextResponse(f"raw {request.method} {len(await request.body())}")

    async def v1(request: Request) -> Response:
        return PlainTextResponse(f"v1 {request.path_params['rest']}")

    app, _ = build_app(
        Served(HELLO, Recorder()),
        extra_routes=[
            Route("/stripe/webhook", webhook, methods=["POST"]),
            Mount("/v1", routes=[Route("/{rest:path}", v1, methods=["POST"])]),
        ],
    )
    async with client_for(app) as http:
        raw = await http.post("/stripe/webhook", content=b"not json at all")
        public = await http.post("/v1/helloworld/call")
    assert raw.text == "raw POST 15"
    assert public.text == "v1 helloworld/call"
    assert public.headers["x-request-id"]


async def test_first_routes_come_before_every_other_route() -> None:
    """Even the health endpoints: the public API's route is tried before anything else."""

    async def first(request: Request) -> Response:
        return PlainTextResponse(f"first {request.url.path}")

    app, _ = build_app(
        Served(HELLO, Recorder()),
        first_routes=[Route("/healthz", first, methods=["GET"])],
        extra_routes=[Route("/metrics", first, methods=["GET"])],
    )
    async with client_for(app) as http:
        health = await http.get("/healthz")
        metrics = await http.get("/metrics")
        ready = await http.get("/readyz")
    assert health.text == "first /healthz"
    assert metrics.text != "first /metrics"  # extra routes come after the fixed ones
    assert ready.status_code == 200


async def test_unexpected_failure_outside_the_platform_api_is_a_logged_generic_500() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("secret hunter2")

    app, _ = build_app(Served(HELLO, Recorder()), extra_routes=[Route("/broken/now", broken)])
    with capture_logs() as logs:
        async with client_for(app) as http:
            response = await http.get("/broken/now", headers={"X-Request-Id": "r-1"})
    assert response.status_code == 500
    assert response.json() == {
        "id": "api",
        "code": 500,
        "detail": "Internal server error",
        "status": "Internal Server Error",
    }
    assert response.headers["x-request-id"] == "r-1"
    errors = [e for e in logs if e["event"] == "http.unhandled_error"]
    assert errors[0]["request_id"] == "r-1"
    access = [e for e in logs if e["event"] == "http.request"]
    assert access[0]["status"] == 500


async def test_a_request_without_a_usable_id_gets_a_fresh_time_ordered_one() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        given = [
            (await http.post("/helloworld/call", json={}, headers=headers)).headers["x-request-id"]
            for headers in ({}, {}, {"X-Request-Id": "bad id\x7f"}, {"X-Request-Id": "x" * 129})
        ]
    assert len(set(given)) == 4
    for made in given:
        parsed = uuid.UUID(made)
        assert made == parsed.hex
        assert parsed.version == 7  # sorts by when it was made
    assert given[0][:12] <= given[1][:12] <= given[2][:12] <= given[3][:12]


async def test_access_log_has_one_line_per_request_without_secrets() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    with capture_logs() as logs:
        async with client_for(app) as http:
            await http.post(
                "/helloworld/call?password=hunter2",
                json={"name": "secret-body"},
                headers={"Authorization": "Bearer good", "X-Request-Id": "r-9"},
            )
    access = [e for e in logs if e["event"] == "http.request"]
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "POST"
    assert line["path"] == "/helloworld/call"
    assert line["status"] == 200
    assert line["request_id"] == "r-9"
    assert line["client"] == "203.0.113.7"
    assert isinstance(line["duration_ms"], float)
    text = repr(logs)
    for secret in ("hunter2", "secret-body", "Bearer good"):
        assert secret not in text


async def test_access_log_can_be_turned_off() -> None:
    app, _ = build_app(Served(HELLO, Recorder()), settings=GatewaySettings(access_log=False))
    with capture_logs() as logs:
        async with client_for(app) as http:
            await http.get("/healthz")
    assert [e for e in logs if e["event"] == "http.request"] == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_probes_answer_only_get_with_a_json_405(path: str) -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        response = await http.post(path)
    assert response.status_code == 405
    assert response.json()["code"] == 405
    assert response.json()["id"] == "api"


async def test_cors_preflight_offers_only_the_methods_endpoints_serve() -> None:
    settings = GatewaySettings(cors_origins=["https://console.example.com"])
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]), settings=settings)
    origin = {"Origin": "https://console.example.com"}
    async with client_for(app) as http:
        post = await http.options(
            "/helloworld/call", headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        put = await http.options(
            "/helloworld/call", headers={**origin, "Access-Control-Request-Method": "PUT"}
        )
    assert post.status_code == 200
    assert post.headers["access-control-allow-methods"] == "GET, POST"
    assert put.status_code == 400


async def test_a_request_runs_in_its_request_context_for_every_log_line() -> None:
    async def handler(request: Request) -> Response:
        bound = structlog.contextvars.get_contextvars()
        return PlainTextResponse(f"{bound.get('request_id')} {current_request_id()}")

    app, _ = build_app(Served(HELLO, Recorder()), extra_routes=[Route("/ctx/now", handler)])
    async with client_for(app) as http:
        offered = await http.get("/ctx/now", headers={"X-Request-Id": "r-7"})
        made_up = await http.get("/ctx/now")
    assert offered.text == "r-7 r-7"
    assert made_up.text == f"{made_up.headers['x-request-id']} {made_up.headers['x-request-id']}"
    assert structlog.contextvars.get_contextvars().get("request_id") is None
