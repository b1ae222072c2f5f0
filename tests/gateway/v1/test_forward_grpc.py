"""Forwarding to a real gRPC upstream with messages built from its descriptors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.v1.grpc_upstream import EchoUpstream, echo_file, serve_echo
from gateway.v1.support import CUSTOMER, KEY, Catalog, assert_upstream_span_sent, entry, gateway
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters import CounterStore
from m3o.services.balance.hot import hot_key
from support.ports import free_port

AUTH = {"Authorization": f"Bearer {KEY}"}
BIG = 2**62 + 1


@pytest.fixture
async def echo() -> AsyncIterator[EchoUpstream]:
    async with serve_echo() as upstream:
        yield upstream


def _echo_gateway(counters: CounterStore, echo: EchoUpstream, **options: Any) -> Any:
    lab = entry("lab", echo.address, files=[echo_file()], pricing={"Echo.Call": 10})
    return gateway(counters, catalog=Catalog(lab), balances={CUSTOMER: 100}, **options)


async def _call(gw: Any, body: dict[str, Any], path: str = "/v1/lab/echo/call") -> Any:
    async with gw.http() as http:
        try:
            return await http.post(path, json=body, headers={**AUTH, "X-Request-Id": "rid-1"})
        finally:
            await gw.v1.calls.forwarders.close()


async def _assert_crashed_uncharged(gw: Any, response: Any, counters: CounterStore) -> None:
    """A 500 the caller is told nothing about, one panic alert, no charge, no event."""
    assert response.status_code == 500
    assert response.json()["detail"] == (
        "Error processing request. If the problem persists please contact support"
    )
    await gw.v1.calls.drain()
    assert [alert[0] for alert in gw.alerts.reported] == ["panic"]
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []


async def test_unary_call_is_transcoded_with_the_token_and_request_id(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo)
    response = await _call(gw, {"name": "Alice", "big": BIG})
    assert response.status_code == 200
    assert response.json() == {
        "message": "Hello Alice",
        "authorization": "Bearer token-key-1",
        "request_id": "rid-1",
        "big": BIG,
    }
    [(method, request, metadata)] = echo.calls
    assert method == "Call" and request.name == "Alice" and request.big == BIG
    assert KEY not in metadata.values()
    assert response.headers["X-M3O-Price"] == "10"
    assert await counters.get(hot_key(CUSTOMER)) == 90
    [event] = await gw.events()
    assert (event.api_name, event.endpoint_name, event.price) == ("lab", "Echo.Call", "10")


async def test_two_part_path_calls_the_only_service(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo)
    response = await _call(gw, {"name": "B"}, path="/v1/lab/call")
    assert response.json()["message"] == "Hello B"


async def test_upstream_client_error_passes_through_uncharged(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo)
    response = await _call(gw, {"name": "x", "fail_code": 3})  # INVALID_ARGUMENT
    assert response.status_code == 400
    assert response.json() == {
        "id": "v1",
        "code": 400,
        "detail": "failed x",
        "status": "Bad Request",
    }
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []


async def test_upstream_internal_error_is_a_crash_uncharged(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo)
    response = await _call(gw, {"name": "x", "fail_code": 13})  # INTERNAL
    await _assert_crashed_uncharged(gw, response, counters)


async def test_an_answer_past_the_limit_is_a_crash_uncharged(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    # The answer repeats the name: 2,000 bytes against a limit of 1,000.
    gw = _echo_gateway(counters, echo, settings=PublicAPISettings(max_answer_bytes=1000))
    response = await _call(gw, {"name": "x" * 2000})
    await _assert_crashed_uncharged(gw, response, counters)


async def test_an_answer_within_the_limit_passes(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo, settings=PublicAPISettings(max_answer_bytes=1000))
    response = await _call(gw, {"name": "x" * 900})
    assert response.status_code == 200
    assert response.json()["message"] == "Hello " + "x" * 900


async def test_an_upstream_out_of_resources_is_still_too_many_requests(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo)
    response = await _call(gw, {"name": "x", "fail_code": 8})  # RESOURCE_EXHAUSTED
    assert response.status_code == 429
    assert response.json()["detail"] == "failed x"
    assert await counters.get(hot_key(CUSTOMER)) == 100


async def test_upstream_timeout_is_503_and_uncharged(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = _echo_gateway(counters, echo, settings=PublicAPISettings(upstream_timeout=0.1))
    response = await _call(gw, {"name": "x", "sleep_ms": 1000})
    assert response.status_code == 503
    assert response.json()["detail"] == "The API did not answer in time"
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.count("total") == 0


async def test_unreachable_upstream_is_503_and_uncharged(counters: CounterStore) -> None:
    lab = entry("lab", "127.0.0.1:1", files=[echo_file()], pricing={"Echo.Call": 10})
    gw = gateway(
        counters,
        catalog=Catalog(lab),
        balances={CUSTOMER: 100},
        settings=PublicAPISettings(upstream_timeout=2),
    )
    response = await _call(gw, {"name": "x"})
    assert response.status_code == 503
    assert await counters.get(hot_key(CUSTOMER)) == 100


async def test_an_upstream_back_after_seconds_away_is_called_again_within_one(
    counters: CounterStore,
) -> None:
    port = free_port()
    lab = entry("lab", f"127.0.0.1:{port}", files=[echo_file()], pricing={"Echo.Call": 10})
    gw = gateway(counters, catalog=Catalog(lab), balances={CUSTOMER: 100})
    loop = asyncio.get_running_loop()
    async with gw.http() as http:
        try:

            async def status() -> int:
                answer = await http.post("/v1/lab/echo/call", json={"name": "x"}, headers=AUTH)
                return answer.status_code

            away_until = loop.time() + 3.0  # gRPC's default backoff: next try 1.2 s+ later
            while loop.time() < away_until:
                assert await status() == 503
                await asyncio.sleep(0.05)  # pacing the calls, not waiting for an outcome
            async with serve_echo(port):
                back = loop.time()
                while await status() != 200:
                    assert loop.time() - back < 10, "the upstream was never called again"
                    await asyncio.sleep(0.02)
                took = loop.time() - back
        finally:
            await gw.v1.calls.forwarders.close()
    assert took < 1.5, f"called again {took:.2f} s after the upstream was back"


async def test_grpc_api_without_descriptors_is_unavailable(counters: CounterStore) -> None:
    gw = gateway(counters, catalog=Catalog(entry("lab", "127.0.0.1:1")))
    response = await _call(gw, {"name": "x"})
    assert response.status_code == 503
    assert response.json()["detail"] == "API not available"


async def test_with_tracing_on_the_upstream_continues_the_calls_trace(
    counters: CounterStore, echo: EchoUpstream, spans: InMemorySpanExporter
) -> None:
    response = await _call(_echo_gateway(counters, echo), {"name": "Alice"})
    assert response.status_code == 200
    [(_method, _request, metadata)] = echo.calls
    assert_upstream_span_sent(spans, "lab", metadata)
