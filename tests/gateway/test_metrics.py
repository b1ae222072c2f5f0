"""/metrics exposes HTTP and RPC counts and latencies from the app's own registry."""

from __future__ import annotations

from gateway.support import HELLO, Recorder, Served, build_app, client_for
from m3o.gateway import Metrics
from support.metric_samples import samples as _samples


async def test_metrics_count_requests_by_route_and_status_after_calls() -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]))
    async with client_for(app) as http:
        for _ in range(3):
            await http.post("/helloworld/call", json={"name": "a"})
        await http.post("/helloworld/Call", json={"name": "badrequest"})
        await http.post("/nope/call")
        await http.get("/healthz")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    requests = _samples(response.text, "m3o_http_requests_total")
    ok = (("method", "POST"), ("route", "/helloworld/Call"), ("status", "200"))
    assert requests[ok] == 3
    bad = (("method", "POST"), ("route", "/helloworld/Call"), ("status", "400"))
    assert requests[bad] == 1
    unknown = (("method", "POST"), ("route", "/{service}/{endpoint}"), ("status", "404"))
    assert requests[unknown] == 1
    assert requests[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == 1
    latency = _samples(response.text, "m3o_http_request_duration_seconds_count")
    assert latency[(("method", "POST"), ("route", "/helloworld/Call"))] == 4


async def test_metrics_count_rpc_calls_by_service_method_and_code() -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]))
    async with client_for(app) as http:
        await http.post("/helloworld/call", json={"name": "a"})
        await http.post("/helloworld/call", json={"name": "notfound"})
        response = await http.get("/metrics")
    calls = _samples(response.text, "m3o_rpc_calls_total")
    assert calls[(("code", "200"), ("method", "Call"), ("service", "helloworld"))] == 1
    assert calls[(("code", "404"), ("method", "Call"), ("service", "helloworld"))] == 1
    latency = _samples(response.text, "m3o_rpc_call_duration_seconds_count")
    assert latency[(("method", "Call"), ("service", "helloworld"))] == 2


def test_two_metrics_objects_never_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.observe("helloworld", "Call", 200, 0.001)
    text = second.render()[0].decode()
    assert _samples(text, "m3o_rpc_calls_total") == {}


def test_methods_outside_the_standard_ones_share_one_label() -> None:
    metrics = Metrics()
    for method in ("PROPFIND", "MKCOL", "X-RANDOM-1", "X-RANDOM-2", "POST"):
        metrics.observe_http(method, "/helloworld/Call", 405, 0.001)
    requests = _samples(metrics.render()[0].decode(), "m3o_http_requests_total")
    assert requests == {
        (("method", "OTHER"), ("route", "/helloworld/Call"), ("status", "405")): 4,
        (("method", "POST"), ("route", "/helloworld/Call"), ("status", "405")): 1,
    }
