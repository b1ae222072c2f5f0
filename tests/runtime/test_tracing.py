"""Tracing across RPCs and events, its export over OTLP, and its configuration.

RPCs run on both transports (in process and gRPC); events on every bus profile (the event
log on SQLite and PostgreSQL, outbox + Redis Streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from m3o.platform.tracing import start_process_tracing
from m3o.runtime.auth import CallContext
from m3o.runtime.config import ConfigError, build_config
from m3o.runtime.errors import BadRequest, Internal
from m3o.runtime.events import Delivery
from m3o.runtime.logging.tracing import (
    TRACEPARENT,
    current_traceparent,
    server_span,
    stop_tracing,
    trace_ids,
    tracing_on,
)
from m3o.runtime.rpc import Dispatcher, GrpcTransport, InProcessTransport, Transport
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto import helloworld_pb2 as pb
from m3o.services.helloworld.proto.client import SPEC, HelloworldClient
from runtime.events_fixtures import (  # noqa: F401 - fixtures
    MakeBus,
    Recorder,
    engine_fixture,
    make_bus_fixture,
    signup,
)
from support.fresh_python import lines_printed
from support.http_fakes import served
from support.services import grpc_channel_to

SECRET = "database password is hunter2"


class Failing(Helloworld):
    async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
        if request.name == "bad":
            raise BadRequest(ctx.endpoint, "Name is bad")
        if request.name == "crash":
            raise RuntimeError(SECRET)
        return pb.CallResponse(message=f"Hello {request.name}")


@pytest.fixture(params=["inprocess", "grpc"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    dispatcher = Dispatcher(SPEC, Failing(), authenticator=None, rules=None)
    if request.param == "inprocess":
        local = InProcessTransport()
        local.register(dispatcher)
        yield local
        return
    async with grpc_channel_to(dispatcher) as channel:
        yield GrpcTransport(channel)


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def of_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


async def test_an_rpc_is_a_client_span_and_the_servers_child_span_in_the_callers_trace(
    transport: Transport, spans: InMemorySpanExporter
) -> None:
    client = HelloworldClient(transport)
    with server_span("outer", {}, {}) as outer:
        await client.call(pb.CallRequest(name="Ann"))
    assert outer is not None
    outer_trace = outer.get_span_context().trace_id
    [calling] = of_kind(spans, SpanKind.CLIENT)
    [serving] = [s for s in of_kind(spans, SpanKind.SERVER) if s.name != "outer"]
    assert calling.name == serving.name == "helloworld.Helloworld/Call"
    assert ids(calling)[0] == ids(serving)[0] == outer_trace
    assert serving.parent is not None and serving.parent.span_id == ids(calling)[1]
    assert serving.attributes is not None
    assert serving.attributes["rpc.method"] == "Call"
    assert serving.attributes["m3o.service"] == "helloworld"


async def test_a_stream_is_a_client_span_and_the_servers_child_span_over_its_length(
    transport: Transport, spans: InMemorySpanExporter
) -> None:
    client = HelloworldClient(transport)
    got = [m.message async for m in client.stream(pb.StreamRequest(name="Ann", messages=3))]
    assert got == ["Hello Ann"] * 3
    [calling] = of_kind(spans, SpanKind.CLIENT)
    [serving] = of_kind(spans, SpanKind.SERVER)
    assert calling.name == serving.name == "helloworld.Helloworld/Stream"
    assert ids(serving)[0] == ids(calling)[0]
    assert serving.parent is not None and serving.parent.span_id == ids(calling)[1]
    assert serving.status.status_code is StatusCode.UNSET


async def test_a_refused_call_is_not_a_server_failure_but_a_crash_is_without_its_message(
    transport: Transport, spans: InMemorySpanExporter
) -> None:
    client = HelloworldClient(transport)
    with pytest.raises(BadRequest):
        await client.call(pb.CallRequest(name="bad"))
    with pytest.raises(Internal):
        await client.call(pb.CallRequest(name="crash"))
    bad, crash = [s for s in of_kind(spans, SpanKind.SERVER)]
    assert bad.attributes is not None and crash.attributes is not None
    assert bad.attributes["m3o.error.code"] == 400
    assert bad.status.status_code is StatusCode.UNSET
    assert crash.attributes["m3o.error.code"] == 500
    assert crash.status.status_code is StatusCode.ERROR
    for span in spans.get_finished_spans():
        assert SECRET not in repr(span.to_json())


async def test_an_event_is_handled_in_a_consumer_span_linked_to_where_it_was_published(
    make_bus: MakeBus, spans: InMemorySpanExporter
) -> None:
    bus = make_bus()
    got = Recorder()
    bus.subscribe("customers", "emails-customers", got)
    await bus.start()
    with server_span("publishing call", {}, {}) as publishing:
        sent = current_traceparent()
        event_id = await bus.publisher.publish("customers", signup("c1"))
    untraced = await bus.publisher.publish("customers", signup("c2"))
    await bus.wait_idle()

    assert publishing is not None
    assert [d.traceparent for d in got.deliveries] == [sent, ""]
    handled = {
        (s.attributes or {})["messaging.message.id"]: s for s in of_kind(spans, SpanKind.CONSUMER)
    }
    consumer = handled[event_id]
    context = publishing.get_span_context()
    assert consumer.name == "customers process"
    assert ids(consumer)[0] == context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == context.span_id
    assert [link.context.span_id for link in consumer.links] == [context.span_id]
    # an event published outside any trace starts its own, with nothing to link to
    assert ids(handled[untraced])[0] != context.trace_id
    assert handled[untraced].links == ()


async def test_a_batch_is_one_consumer_span_linked_to_where_each_event_was_published(
    make_bus: MakeBus, spans: InMemorySpanExporter, sessions: SessionFactory
) -> None:
    bus = make_bus()
    batches: list[list[str]] = []

    async def handle(deliveries: Sequence[Delivery]) -> None:
        batches.append([d.id for d in deliveries])

    bus.subscribe_batch("customers", "usage-customers", handle, linger=timedelta(seconds=0.5))
    await bus.start()
    published = []
    async with transaction(sessions) as session:  # committed together: one claim
        for name in ("first call", "second call"):
            with server_span(name, {}, {}) as publishing:
                assert publishing is not None
                published.append(publishing.get_span_context())
                await bus.publisher.publish("customers", signup(name), session=session)
        await bus.publisher.publish("customers", signup("untraced"), session=session)
    await bus.wait_idle()

    assert len(batches) == 1 and len(batches[0]) == 3
    [consumer] = of_kind(spans, SpanKind.CONSUMER)
    assert consumer.name == "customers process"
    assert consumer.parent is None
    assert (consumer.attributes or {})["messaging.batch.message_count"] == 3
    assert sorted(link.context.span_id for link in consumer.links) == sorted(
        context.span_id for context in published
    )


def test_log_lines_inside_a_span_name_its_trace(spans: InMemorySpanExporter) -> None:
    with server_span("logging call", {}, {}) as span:
        line = trace_ids(None, "info", {"event": "x"})
    assert span is not None
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in trace_ids(None, "info", {"event": "outside"})


def test_without_tracing_there_is_no_trace_context_to_carry() -> None:
    assert not tracing_on()
    with server_span("nothing", {TRACEPARENT: "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, {}) as s:
        assert s is None
        assert current_traceparent() == ""


def test_without_tracing_the_tracing_sdk_and_exporter_are_not_even_imported() -> None:
    # (redis-py imports OpenTelemetry's API and metrics SDK itself when they are installed)
    loaded = lines_printed(
        "import sys, m3o.platform.local, m3o.platform.remote, m3o.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'opentelemetry.sdk.trace', 'opentelemetry.exporter', "
        "'opentelemetry.trace.propagation.tracecontext'))))"
    )
    assert loaded == ["[]"]


class Collector:
    """A fake OTLP/HTTP collector: records what is posted to ``/v1/traces``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.app = Starlette(routes=[Route("/v1/traces", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.posts.append((request.headers.get("content-type", ""), await request.body()))
        return Response(b"", media_type="application/x-protobuf")


async def test_spans_are_posted_to_the_configured_otlp_endpoint() -> None:
    collector = Collector()
    with served(collector.app) as url:
        config = build_config({"tracing": {"otlp_endpoint": f"{url}/v1/traces"}}, {})
        assert start_process_tracing(config, "m3o-gateway")
        try:
            with server_span("POST /v1/helloworld/call", {}, {"m3o.request_id": "r1"}):
                pass
        finally:
            await asyncio.to_thread(stop_tracing)  # exports the pending batch
    [(content_type, body)] = collector.posts
    assert content_type == "application/x-protobuf"
    exported = ExportTraceServiceRequest.FromString(body)
    [resource] = exported.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "m3o-gateway"
    [span] = [s for scope in resource.scope_spans for s in scope.spans]
    assert span.name == "POST /v1/helloworld/call"


def test_tracing_is_off_unless_an_endpoint_is_configured() -> None:
    assert not start_process_tracing(build_config({}, {}), "m3o")
    assert not tracing_on()


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ({"otlp_endpoint": "collector:4318"}, "tracing.otlp_endpoint"),
        ({"otlp_endpoint": "ftp://collector/v1/traces"}, "tracing.otlp_endpoint"),
        ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
        ({"sample_ratio": -0.1}, "tracing.sample_ratio"),
    ],
)
def test_a_bad_tracing_setting_is_refused_by_name(
    section: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        build_config({"tracing": section}, {})
    assert complaint in str(refused.value)
