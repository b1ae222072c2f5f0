"""Prometheus metrics of the process: HTTP requests and RPC calls.

A :class:`Metrics` owns its :class:`~prometheus_client.CollectorRegistry` (never the
global one), so two applications in one process, or two tests, never share counts. It is
also the :class:`~m3o.runtime.rpc.RpcObserver` handed to the dispatchers.

Series:

- ``m3o_http_requests_total{method, route, status}``;
- ``m3o_http_request_duration_seconds{method, route}`` (histogram);
- ``m3o_rpc_calls_total{service, method, code}``;
- ``m3o_rpc_call_duration_seconds{service, method}`` (histogram).

``route`` is a route template or an endpoint's canonical path (``/customers/Create``,
``/v1/helloworld/Helloworld.Call``), never the raw path, and ``method`` is one of the
standard HTTP methods or ``OTHER``, so callers cannot add series by inventing paths or
methods.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["LATENCY_BUCKETS", "METHODS", "Metrics"]

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

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
