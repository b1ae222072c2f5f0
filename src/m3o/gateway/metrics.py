"""Prometheus metrics of the process: HTTP requests and RPC calls.

A :class:`Metrics` owns its :class:`~prometheus_client.CollectorRegistry` (never the
global one), so two applications in one process, or two tests, never share counts. It is
also the :class:`~m3o.runtime.rpc.RpcObserver` handed to the dispatchers.

Series:

- ``m3o_http_requests_total{method, route, status}``;
- ``m3o_http_request_duration_seconds{method, route}`` (histogram);
- ``m3o_rpc_calls_total{service, method, code}``;
- ``m3o_rpc_call_duration_seconds{service, method}`` (histogram);
- once :meth:`Metrics.watch_request_events` is given the public API's request log:
  ``m3o_v1_request_events_buffered`` (in memory, unpublished),
  ``m3o_v1_request_events_spilled_total`` (moved to durable storage past the buffer),
  ``m3o_v1_request_events_spill_failures_total`` and
  ``m3o_v1_request_events_spill_backlog`` (request events waiting in that storage for
  their stream, as last read).

``route`` is a route template or an endpoint's canonical path (``/customers/Create``,
``/v1/helloworld/Helloworld.Call``), never the raw path, and ``method`` is one of the
standard HTTP methods or ``OTHER``, so callers cannot add series by inventing paths or
methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "METHODS", "Metrics", "RequestEventStats"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""HTTP methods with a label of their own; any other is counted as ``OTHER``."""

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds; from half a millisecond (an in-process call) to the default RPC deadline."""


class RequestEventStats(Protocol):
    """What the public API's request log tells about its events (read at each scrape)."""

    @property
    def pending(self) -> int: ...

    @property
    def spilled(self) -> int: ...

    @property
    def spill_failures(self) -> int: ...

    @property
    def spill_backlog(self) -> int: ...


class _RequestEventCollector(Collector):
    def __init__(self, stats: RequestEventStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily(
            "m3o_v1_request_events_buffered",
            "Request events in memory, not yet published.",
            value=stats.pending,
        )
        yield CounterMetricFamily(
            "m3o_v1_request_events_spilled",
            "Request events moved to durable storage past the in-memory buffer.",
            value=stats.spilled,
        )
        yield CounterMetricFamily(
            "m3o_v1_request_events_spill_failures",
            "Writes of request events to durable storage that failed (kept in memory).",
            value=stats.spill_failures,
        )
        yield GaugeMetricFamily(
            "m3o_v1_request_events_spill_backlog",
            "Request events waiting in durable storage for their stream (as last read).",
            value=stats.spill_backlog,
        )


class Metrics:
    """The process's metrics; ``observe`` makes it an RpcObserver."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._http_requests = Counter(
            "m3o_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._http_latency = Histogram(
            "m3o_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rpc_calls = Counter(
            "m3o_rpc_calls",
            "RPC calls served, by service, method and result code (HTTP-style).",
            ("service", "method", "code"),
            registry=self.registry,
        )
        self._rpc_latency = Histogram(
            "m3o_rpc_call_duration_seconds",
            "Time to serve an RPC call, by service and method.",
            ("service", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Children are looked up once per label set; prometheus_client takes a lock on
        # every labels() call.
        self._counters: dict[tuple[str, ...], Counter] = {}
        self._histograms: dict[tuple[str, ...], Histogram] = {}

    def _count(self, family: Counter, key: tuple[str, ...]) -> None:
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = family.labels(*key[1:])
        child.inc()

    def _time(self, family: Histogram, key: tuple[str, ...], seconds: float) -> None:
        child = self._histograms.get(key)
        if child is None:
            child = self._histograms[key] = family.labels(*key[1:])
        child.observe(seconds)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered HTTP request."""
        if method not in METHODS:
            method = "OTHER"
        self._count(self._http_requests, ("http", method, route, str(status)))
        self._time(self._http_latency, ("http", method, route), seconds)

    def observe(self, service: str, method: str, code: int, seconds: float) -> None:
        """Record one finished RPC call (the RpcObserver protocol)."""
        self._count(self._rpc_calls, ("rpc", service, method, str(code)))
        self._time(self._rpc_latency, ("rpc", service, method), seconds)

    def watch_request_events(self, stats: RequestEventStats) -> None:
        """Expose the public API's request events (buffered, spilled, spill backlog)."""
        self.registry.register(_RequestEventCollector(stats))

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
