"""A service process's Prometheus metrics, on a port of its own (``server.metrics_port``).

``m3o run <service>`` answers RPCs over gRPC only, so the series its dispatchers record
(``m3o_rpc_calls_total{service,method,code}``, ``m3o_rpc_call_duration_seconds``) are served
here, in Prometheus's text format, at ``/metrics`` (the HTTP front serves its own on its
port). prometheus_client's server answers from a thread of its own: a scrape never waits on
the event loop, nor the loop on a scrape.
"""

from __future__ import annotations

from prometheus_client import start_http_server

from m3o.gateway.metrics import Metrics

__all__ = ["MetricsEndpoint"]


class MetricsEndpoint:
    """Serves ``metrics`` over HTTP at ``host:port`` until :meth:`close`.

    ``port`` 0 picks a free one (:attr:`port` is the one bound). Raises ``OSError`` when it
    cannot listen there.
    """

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)

    @property
    def port(self) -> int:
        return self._server.server_port

    def close(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
