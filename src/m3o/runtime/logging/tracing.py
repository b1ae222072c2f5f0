"""OpenTelemetry traces: one call followed across the HTTP front, RPCs, upstreams and events.

Off unless :func:`start_tracing` ran (``tracing.otlp_endpoint`` configured): then no SDK
provider exists, the tracing SDK and exporter are not even imported (about 40 ms a CLI
command need not pay), and every helper here returns after reading one flag, before any
OpenTelemetry call; nothing is allocated per call but a shared no-op context manager.

On, the spans are:

- ``SERVER`` per HTTP request (:func:`server_span` in the front's middleware), continuing
  a ``traceparent`` header the client sent;
- ``CLIENT`` per RPC a generated client makes and ``SERVER`` per RPC a dispatcher serves
  (:func:`client_span`, :func:`server_span`), the context passed as the W3C
  ``traceparent`` metadata entry, in process as over gRPC. A server-streaming RPC's spans
  (:func:`stream_client_span`, :func:`stream_server_span`) cover the whole stream but are
  not made current (an async generator's steps run in its reader's context), so calls
  its handler makes are not their children;
- ``CLIENT`` per call the gateway forwards to an upstream API (local, gRPC or HTTP: the
  same ``traceparent`` entry, as metadata or header);
- ``CONSUMER`` per event a consumer group handles (:func:`consumer_span`): an event carries
  the ``traceparent`` of the span it was published in (:func:`current_traceparent`, kept
  with the event in the event log, the outbox and its stream entry); the consumer span is
  that span's child and links to it, so it shows in the publishing call's trace. A
  batch handled in one go is one span (:func:`consumer_batch_span`), a root linked to
  each of its events' publishing spans.

Attributes say what was called and how it ended (service, method, route, status, event
topic and id, request id); never keys, tokens, headers or bodies.

Spans are exported in batches over OTLP (HTTP/protobuf) by a provider of this module's
own (not installed as OpenTelemetry's global one); :func:`stop_tracing` flushes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Link, Span, SpanKind, Tracer

__all__ = [
    "TRACEPARENT",
    "client_span",
    "consumer_batch_span",
    "consumer_span",
    "current_traceparent",
    "describe_span",
    "inject",
    "server_span",
    "start_tracing",
    "stop_tracing",
    "stream_client_span",
    "stream_server_span",
    "trace_ids",
    "tracing_on",
]

TRACEPARENT = "traceparent"
"""The W3C trace context header (HTTP) and metadata key (RPC)."""


class _Process:
    """This process's tracing: ``enabled`` is read first by every helper (when False,
    nothing else here is touched). ``api`` is ``opentelemetry.trace``, imported on start."""

    __slots__ = ("api", "enabled", "propagator", "provider", "tracer")

    def __init__(self) -> None:
        self.enabled = False
        self.api: ModuleType | None = None
        self.propagator: TextMapPropagator | None = None
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None


_process = _Process()
_NOTHING: AbstractContextManager[None] = nullcontext()


def tracing_on() -> bool:
    """Spans are being recorded in this process."""
    return _process.enabled


def start_tracing(
    service_name: str,
    *,
    otlp_endpoint: str = "",
    sample_ratio: float = 1.0,
    exporter: SpanExporter | None = None,
) -> bool:
    """Record spans as ``service_name``, exported to ``otlp_endpoint`` (the collector's
    traces URL, ``http://collector:4318/v1/traces``) in batches, or to ``exporter`` span by
    span (tests). ``sample_ratio`` of new traces are kept; a trace begun elsewhere keeps its
    caller's decision. Once per process: False (and nothing changes) when already on."""
    if _process.enabled:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    _process.api = trace
    _process.propagator = TraceContextTextMapPropagator()
    _process.provider = provider
    _process.tracer = provider.get_tracer("m3o")
    _process.enabled = True
    return True


def stop_tracing() -> None:
    """Export what is pending and turn tracing off (process shut-down)."""
    provider = _process.provider
    _process.enabled = False
    _process.provider = None
    _process.tracer = None
    if provider is not None:
        provider.shutdown()


def _api() -> ModuleType:
    api = _process.api
    assert api is not None, "tracing was never started"
    return api


def _propagator() -> TextMapPropagator:
    propagator = _process.propagator
    assert propagator is not None, "tracing was never started"
    return propagator


def _parent(carrier: Mapping[str, str]) -> Context | None:
    if TRACEPARENT not in carrier:
        return None
    return _propagator().extract(carrier)


def server_span(
    name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """A ``SERVER`` span, current within the block, continuing the ``traceparent`` of
    ``carrier`` (request headers or RPC metadata) if any. Yields None when tracing is off."""
    if not _process.enabled:
        return _NOTHING
    return _span(name, _api().SpanKind.SERVER, _parent(carrier), attributes, ())


def client_span(
    name: str, carrier: MutableMapping[str, str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """A ``CLIENT`` span, current within the block, whose context is written into
    ``carrier`` (the metadata or headers about to be sent) as ``traceparent``."""
    if not _process.enabled:
        return _NOTHING
    return _client_span(name, carrier, attributes)


@contextmanager
def _client_span(
    name: str, carrier: MutableMapping[str, str], attributes: Mapping[str, Any]
) -> Iterator[Span | None]:
    with _span(name, _api().SpanKind.CLIENT, None, attributes, ()) as span:
        _propagator().inject(carrier)
        yield span


def consumer_span(
    name: str, traceparent: str, attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """A ``CONSUMER`` span for handling an event published in the span ``traceparent``
    names (empty: published outside a trace): its child, and linked to it."""
    if not _process.enabled:
        return _NOTHING
    api = _api()
    parent = _propagator().extract({TRACEPARENT: traceparent}) if traceparent else None
    links: tuple[Link, ...] = ()
    if parent is not None:
        published = api.get_current_span(parent).get_span_context()
        if published.is_valid:
            links = (api.Link(published),)
    return _span(name, api.SpanKind.CONSUMER, parent, attributes, links)


def consumer_batch_span(
    name: str, traceparents: Iterable[str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """A ``CONSUMER`` span for handling a batch of events in one go: a root, linked to the
    span each event was published in (OpenTelemetry's way for a batch, whose events come
    from many traces)."""
    if not _process.enabled:
        return _NOTHING
    api = _api()
    links: list[Link] = []
    for traceparent in dict.fromkeys(t for t in traceparents if t):
        context = _propagator().extract({TRACEPARENT: traceparent})
        published = api.get_current_span(context).get_span_context()
        if published.is_valid:
            links.append(api.Link(published))
    return _span(name, api.SpanKind.CONSUMER, None, attributes, tuple(links))


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current span's context into ``carrier`` (``traceparent``), if there is one
    and it has none yet."""
    if not _process.enabled or TRACEPARENT in carrier:
        return
    _propagator().inject(carrier)


def current_traceparent() -> str:
    """The current span's ``traceparent``; empty when off or outside a span."""
    if not _process.enabled:
        return ""
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get(TRACEPARENT, "")


def trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, when tracing
    is on and there is one (a log line leads to its trace)."""
    if _process.enabled:
        context = _api().get_current_span().get_span_context()
        if context.is_valid:
            event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
            event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def describe_span(
    span: Span | None, attributes: Mapping[str, Any], *, name: str = "", failed: bool = False
) -> None:
    """Add ``attributes`` to ``span`` (None: tracing off), rename it if ``name`` is given,
    and mark it failed if so."""
    if span is None:
        return
    span.set_attributes(dict(attributes))
    if name:
        span.update_name(name)
    if failed:
        api = _api()
        span.set_status(api.Status(api.StatusCode.ERROR))


@contextmanager
def _span(
    name: str,
    kind: SpanKind,
    parent: Context | None,
    attributes: Mapping[str, Any],
    links: tuple[Link, ...],
) -> Iterator[Span | None]:
    tracer = _process.tracer
    if tracer is None:  # stopped meanwhile
        yield None
        return
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes),
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            _failed(span, exc)
            raise


def stream_server_span(
    name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """:func:`server_span` for a stream served by an async generator: the span covers the
    whole stream but is not made current (the generator's steps run in its consumer's
    context), so calls the stream's handler makes are not its children."""
    if not _process.enabled:
        return _NOTHING
    return _stream_span(name, _api().SpanKind.SERVER, _parent(carrier), None, attributes)


def stream_client_span(
    name: str, carrier: MutableMapping[str, str], attributes: Mapping[str, Any]
) -> AbstractContextManager[Span | None]:
    """:func:`client_span` for a stream read through an async generator (not made
    current; its context is written into ``carrier``)."""
    if not _process.enabled:
        return _NOTHING
    return _stream_span(name, _api().SpanKind.CLIENT, None, carrier, attributes)


@contextmanager
def _stream_span(
    name: str,
    kind: SpanKind,
    parent: Context | None,
    carrier: MutableMapping[str, str] | None,
    attributes: Mapping[str, Any],
) -> Iterator[Span | None]:
    tracer = _process.tracer
    if tracer is None:
        yield None
        return
    span = tracer.start_span(name, context=parent, kind=kind, attributes=dict(attributes))
    if carrier is not None:
        _propagator().inject(carrier, context=_api().set_span_in_context(span))
    try:
        yield span
    except GeneratorExit:  # the reader stopped early: not a failure
        raise
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        span.end()


def _failed(span: Span, exc: BaseException) -> None:
    """Record the kind of failure only: messages may quote what the caller sent. A
    refusal (an error kind below 500) is the caller's, not a failure of the span."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        span.set_attribute("m3o.error.code", code)
    span.set_attribute("error.type", type(exc).__name__)
    if not isinstance(code, int) or code >= 500:
        api = _api()
        span.set_status(api.Status(api.StatusCode.ERROR, type(exc).__name__))
