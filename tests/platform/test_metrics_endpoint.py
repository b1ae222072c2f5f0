"""A service process's metrics endpoint serves its registry in Prometheus's text format."""

from __future__ import annotations

import socket

import httpx
import pytest

from m3o.gateway.metrics import Metrics
from m3o.platform.metrics_endpoint import MetricsEndpoint
from support.metric_samples import samples


def test_the_endpoint_serves_the_rpc_series_until_closed() -> None:
    metrics = Metrics()
    metrics.observe("customers", "Read", 404, 0.002)
    endpoint = MetricsEndpoint(metrics, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    try:
        scraped = httpx.get(url, timeout=10)
    finally:
        endpoint.close()

    assert scraped.status_code == 200
    assert samples(scraped.text, "m3o_rpc_calls_total") == {
        (("code", "404"), ("method", "Read"), ("service", "customers")): 1.0
    }
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=10)


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            MetricsEndpoint(Metrics(), "127.0.0.1", taken.getsockname()[1])
