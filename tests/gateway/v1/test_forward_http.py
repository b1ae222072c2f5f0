"""Forwarding to a real HTTP upstream: ``POST <address>/<Service>/<Method>`` with JSON."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.v1.servers import serve_app
from gateway.v1.support import CUSTOMER, KEY, Catalog, assert_upstream_span_sent, entry, gateway
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters import CounterStore
from m3o.services.balance.hot import hot_key
from support.ports import closed_port

AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Upstream:
    address: str = ""
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        self.received.append((request.url.path, dict(request.headers), body))
        route = request.path_params["method"]
        if route == "Call":
            return JSONResponse({"message": f"Hello {body.get('name', '')}"})
        if route == "Empty":
            return Response(b"", status_code=204)
        if route == "Fail":
            error = {"id": "weather.fail", "code": 404, "detail": "No such city", "status": "x"}
            return JSONResponse(error, status_code=404)
        if route == "Plain":
            return Response("you sent nonsense", status_code=422, media_type="text/plain")
        if route == "Crash":
            return Response("Traceback: secret stuff", status_code=500)
        if route == "Busy":
            return Response("busy", status_code=503)
        if route == "Cookie":
            answer = JSONResponse({"cookie": request.headers.get("cookie", "")})
            answer.set_cookie("session", "for-one-caller-only")
            return answer
        if route == "Zipped":
            packed = gzip.compress(b'{"message": "unpacked"}')
            return Response(
                packed,
                media_type="application/json",
                headers={"content-encoding": "gzip"},
            )
        if route == "Slow":
            await asyncio.sleep(0.5)
            return JSONResponse({})
        return JSONResponse({"id": "x", "code": 404, "detail": "?", "status": "?"}, 404)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{service}/{method}", self.handle, methods=["POST"])])


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    found = Upstream()
    async with serve_app(found.app()) as address:
        found.address = f"http://{address}"
        yield found


async def _call(counters: CounterStore, upstream: Upstream, method: str, **options: Any) -> Any:
    pricing = {f"Weather.{name}": 7 for name in ("Call", "Fail", "Plain", "Crash", "Busy", "Slow")}
    weather = entry("weather", upstream.address, protocol="http", pricing=pricing)
    gw = gateway(counters, catalog=Catalog(weather), balances={CUSTOMER: 100}, **options)
    async with gw.http() as http:
        try:
            response = await http.post(
                f"/v1/weather/{method}?name=Q",
                json={"name": "Sun"},
                headers={**AUTH, "X-Request-Id": "rid-7"},
            )
        finally:
            await gw.v1.calls.forwarders.close()
    return gw, response


async def test_call_posts_json_to_service_and_method_with_token_and_request_id(
    counters: CounterStore, upstream: Upstream
) -> None:
    gw, response = await _call(counters, upstream, "call")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello Sun"}
    [(path, headers, body)] = upstream.received
    assert path == "/Weather/Call"
    assert body == {"name": "Sun"}
    assert headers["authorization"] == "Bearer token-key-1"
    assert headers["x-request-id"] == "rid-7"
    assert KEY not in str(headers)
    assert response.headers["X-M3O-Price"] == "7"
    assert await counters.get(hot_key(CUSTOMER)) == 93
    [event] = await gw.events()
    assert (event.endpoint_name, event.price) == ("Weather.Call", "7")


async def test_empty_answer_is_an_empty_object(counters: CounterStore, upstream: Upstream) -> None:
    _, response = await _call(counters, upstream, "empty")
    assert response.status_code == 200
    assert response.json() == {}


async def test_an_upstreams_cookie_is_never_sent_on_another_call(
    counters: CounterStore, upstream: Upstream
) -> None:
    # By name, not by IP address: a cookie jar may ignore cookies of IP addresses.
    address = upstream.address.replace("127.0.0.1", "localhost")
    weather = entry("weather", address, protocol="http")
    gw = gateway(counters, catalog=Catalog(weather), balances={CUSTOMER: 100})
    async with gw.http() as http:
        try:
            answers = [
                (await http.post("/v1/weather/cookie", json={}, headers=AUTH)).json()
                for _ in range(2)
            ]
        finally:
            await gw.v1.calls.forwarders.close()
    assert answers == [{"cookie": ""}, {"cookie": ""}]


async def test_a_compressed_answer_is_passed_on_unpacked(
    counters: CounterStore, upstream: Upstream
) -> None:
    _, response = await _call(counters, upstream, "zipped")
    assert response.status_code == 200
    assert response.json() == {"message": "unpacked"}


async def test_proxy_settings_of_the_environment_are_not_used(
    counters: CounterStore, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    _, response = await _call(counters, upstream, "call")
    assert response.json() == {"message": "Hello Sun"}


async def test_upstream_error_document_passes_through_uncharged(
    counters: CounterStore, upstream: Upstream
) -> None:
    gw, response = await _call(counters, upstream, "fail")
    assert response.status_code == 404
    assert response.json() == {
        "id": "weather.fail",
        "code": 404,
        "detail": "No such city",
        "status": "Not Found",
    }
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []


async def test_plain_client_error_keeps_its_text_as_detail(
    counters: CounterStore, upstream: Upstream
) -> None:
    _, response = await _call(counters, upstream, "plain")
    assert response.status_code == 400
    assert response.json()["detail"] == "you sent nonsense"


async def test_upstream_500_is_a_crash_uncharged(
    counters: CounterStore, upstream: Upstream
) -> None:
    gw, response = await _call(counters, upstream, "crash")
    assert response.status_code == 500
    assert "secret" not in response.text
    await gw.v1.calls.drain()
    assert [alert[1] for alert in gw.alerts.reported] == ["/v1/weather/crash"]
    assert await counters.get(hot_key(CUSTOMER)) == 100


async def test_an_answer_past_the_limit_is_a_crash_uncharged(
    counters: CounterStore, upstream: Upstream
) -> None:
    # {"message": "Hello Sun"} is 24 bytes; the limit is set below it.
    gw, response = await _call(
        counters, upstream, "call", settings=PublicAPISettings(max_answer_bytes=20)
    )
    assert response.status_code == 500
    await gw.v1.calls.drain()
    assert [alert[1] for alert in gw.alerts.reported] == ["/v1/weather/call"]
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []


async def test_upstream_503_is_unavailable_uncharged(
    counters: CounterStore, upstream: Upstream
) -> None:
    _, response = await _call(counters, upstream, "busy")
    assert response.status_code == 503
    assert await counters.get(hot_key(CUSTOMER)) == 100


async def test_upstream_timeout_is_503_uncharged(
    counters: CounterStore, upstream: Upstream
) -> None:
    gw, response = await _call(
        counters, upstream, "slow", settings=PublicAPISettings(upstream_timeout=0.1)
    )
    assert response.status_code == 503
    assert response.json()["detail"] == "The API did not answer in time"
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.count("total") == 0


async def test_with_tracing_on_the_upstream_continues_the_calls_trace(
    counters: CounterStore, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    _, response = await _call(counters, upstream, "call")
    assert response.status_code == 200
    [(_path, headers, _body)] = upstream.received
    assert_upstream_span_sent(spans, "weather", headers)
