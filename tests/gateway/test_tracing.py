"""Tracing a public API call through the local platform (every service in one process).

One ``/v1/helloworld/call`` makes one trace: the gateway's HTTP span, the RPCs it causes
(the fresh key's upstream token: auth), the upstream call and helloworld serving it; usage
counts the request event in a batch, whose span is linked to where the event was published.
With tracing off, the same call makes no OpenTelemetry call at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import select

from m3o.events.requests import TOPIC
from m3o.platform.local import LocalPlatform
from m3o.runtime.events.tables import event_log
from m3o.runtime.logging.tracing import tracing_on
from support.platform import Api, Customer, local_platform, new_customer

ADMIN_PASSWORD = "tracing-test-admin-password"
DEADLINE = 30.0
"""Generous: background consumers on a busy 2-core machine."""
FUNDS = 1_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalPlatform]:
    env = {"M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD}
    async with local_platform(tmp_path, env, request.param) as opened:
        yield opened


@asynccontextmanager
async def customer_of(platform: LocalPlatform) -> AsyncIterator[tuple[httpx.AsyncClient, Customer]]:
    transport = httpx.ASGITransport(app=platform.app)
    async with (
        platform.app.router.lifespan_context(platform.app),
        httpx.AsyncClient(transport=transport, base_url="http://m3o.test", timeout=30) as client,
    ):
        api = Api(client, "", ADMIN_PASSWORD)
        await api.log_in_admin()
        yield client, await new_customer(api, "traced", FUNDS)


async def call_helloworld(client: httpx.AsyncClient, customer: Customer) -> httpx.Response:
    called = await client.post(
        "/v1/helloworld/call",
        json={"name": "Ann"},
        headers={"Authorization": f"Bearer {customer.key}", "X-Request-Id": "trace-me-1"},
    )
    assert called.status_code == 200, called.text
    return called


def the_call(spans: InMemorySpanExporter) -> ReadableSpan:
    [server] = [
        span
        for span in spans.get_finished_spans()
        if span.kind is SpanKind.SERVER
        and (span.attributes or {}).get("m3o.request_id") == "trace-me-1"
    ]
    return server


def of_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def consumed(spans: InMemorySpanExporter, group: str) -> ReadableSpan:
    deadline = time.monotonic() + DEADLINE
    while True:
        for span in spans.get_finished_spans():
            attributes = span.attributes or {}
            if (
                span.kind is SpanKind.CONSUMER
                and attributes.get("messaging.destination.name") == TOPIC
                and attributes.get("messaging.consumer.group.name") == group
            ):
                return span
        assert time.monotonic() < deadline, f"no span of {group} handling a {TOPIC} event"
        await asyncio.sleep(0.05)


async def test_one_public_call_is_one_trace_through_gateway_auth_upstream_and_usage(
    platform: LocalPlatform, spans: InMemorySpanExporter
) -> None:
    async with customer_of(platform) as (client, customer):
        spans.clear()
        await call_helloworld(client, customer)

        gateway = the_call(spans)
        assert gateway.name == "POST /v1/helloworld/Helloworld.Call"
        assert gateway.attributes is not None
        assert gateway.attributes["http.response.status_code"] == 200
        traced = [s for s in spans.get_finished_spans() if trace_id(s) == trace_id(gateway)]

        # the fresh key gets its upstream token (auth.Grant), the call is forwarded,
        # helloworld serves it
        served = {
            str((s.attributes or {}).get("m3o.service"))
            for s in traced
            if s.kind is SpanKind.SERVER and s is not gateway
        }
        assert {"auth", "helloworld"} <= served, served
        assert any(s.name == "auth.Auth/Grant" and s.kind is SpanKind.SERVER for s in traced)
        [upstream] = [s for s in traced if s.name == "upstream helloworld"]
        assert upstream.kind is SpanKind.CLIENT
        assert upstream.parent is not None and upstream.parent.span_id == span_id(gateway)
        [hello] = [
            s
            for s in traced
            if s.kind is SpanKind.SERVER and (s.attributes or {}).get("m3o.service") == "helloworld"
        ]
        assert hello.parent is not None and hello.parent.span_id == span_id(upstream)

        # usage counts the call's request event in a batch: its span starts a trace of
        # its own, linked to the call
        usage = await consumed(spans, "usage-requests")
        assert trace_id(usage) != trace_id(gateway)
        assert usage.parent is None
        assert [link.context.span_id for link in usage.links] == [span_id(gateway)]
        assert [link.context.trace_id for link in usage.links] == [trace_id(gateway)]

        # nothing secret in any attribute: not the key, not the token upstream got
        for span in spans.get_finished_spans():
            for value in (span.attributes or {}).values():
                assert customer.key not in str(value)
                assert "Bearer" not in str(value)


async def test_probes_and_metrics_scrapes_make_no_span(
    platform: LocalPlatform, spans: InMemorySpanExporter
) -> None:
    async with customer_of(platform) as (client, _customer):
        spans.clear()
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.post("/auth/token", json={})).status_code == 400
    http = [s.attributes or {} for s in of_kind(spans, SpanKind.SERVER)]
    assert [a["url.path"] for a in http if "http.request.method" in a] == ["/auth/token"]


async def test_a_traceparent_sent_by_the_caller_is_continued(
    platform: LocalPlatform, spans: InMemorySpanExporter
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with customer_of(platform) as (client, customer):
        called = await client.post(
            "/v1/helloworld/call",
            json={"name": "Ann"},
            headers={
                "Authorization": f"Bearer {customer.key}",
                "X-Request-Id": "trace-me-1",
                "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
            },
        )
        assert called.status_code == 200, called.text
        gateway = the_call(spans)
        assert f"{trace_id(gateway):032x}" == caller_trace
        assert gateway.parent is not None and gateway.parent.span_id == 0x00F067AA0BA902B7


async def test_with_tracing_off_a_call_makes_no_opentelemetry_call(
    platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not tracing_on()
    touched: list[str] = []

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def called(*args: Any, **kwargs: Any) -> Any:
            touched.append(name)
            return original(*args, **kwargs)

        return called

    monkeypatch.setattr(otel_context, "attach", spy("attach", otel_context.attach))
    for method in ("inject", "extract"):
        original = getattr(TraceContextTextMapPropagator, method)
        monkeypatch.setattr(TraceContextTextMapPropagator, method, spy(method, original))
    monkeypatch.setattr(SdkTracer, "start_span", spy("start_span", SdkTracer.start_span))
    async with customer_of(platform) as (client, customer):
        await call_helloworld(client, customer)
        async with platform.engine.connect() as conn:
            carried = (await conn.execute(select(event_log.c.traceparent))).scalars().all()
    assert touched == []
    assert carried and set(carried) == {None}  # events published, no trace context in them
