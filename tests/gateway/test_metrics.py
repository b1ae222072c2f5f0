"""/metrics exposes HTTP and RPC counts and latencies from the app's own registry, and the
public API's request events (buffered, spilled)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.support import HELLO, Recorder, Served, build_app, client_for
from m3o.events.requests import Request
from m3o.gateway import Metrics
from m3o.gateway.v1.metering import RequestLog
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Envelope
from m3o.runtime.rpc.fakes import FakePublisher
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


class _Outbox:
    def __init__(self) -> None:
        self.stored: list[Envelope] = []

    async def spill(self, envelopes: Sequence[Envelope]) -> None:
        self.stored += envelopes

    async def waiting(self, topic: str) -> int:
        return len(self.stored)


async def test_request_events_spilled_past_the_buffer_show_in_the_metrics() -> None:
    publisher = FakePublisher()
    publisher.raises(Unavailable("events", "down"))
    log = RequestLog(publisher, max_buffered=4, spill=_Outbox())
    metrics = Metrics()
    metrics.watch_request_events(log)
    await log.start()
    try:
        for n in range(10):
            log.record(Request(api_key_id=f"key-{n}", api_name="helloworld", price="free"))
        async with asyncio.timeout(30):
            while log.spill_backlog == 0:
                await asyncio.sleep(0.005)
        text = metrics.render()[0].decode()
    finally:
        publisher.raises(None)  # type: ignore[arg-type]
        await log.stop()
    assert _samples(text, "m3o_v1_request_events_buffered") == {(): 2}
    assert _samples(text, "m3o_v1_request_events_spilled_total") == {(): 8}
    assert _samples(text, "m3o_v1_request_events_spill_backlog") == {(): 8}
    assert _samples(text, "m3o_v1_request_events_spill_failures_total") == {(): 0}
