"""What tracing costs when it is off (the default), and when it is on.

Measures, in this process:

- each tracing helper the hot path calls, with tracing off: what it adds per use;
- one in-process RPC (helloworld ``Call`` through its generated client, the dispatcher and
  every interceptor): tracing off, then on (spans recorded by an exporter that drops them),
  the median of ``--rounds`` runs of ``--calls`` calls each.

A ``/v1`` call uses the helpers at most a dozen times (the HTTP span, two or three RPCs on
each side, the upstream span, the event's trace context), so with tracing off it pays
a dozen times the helper's cost: compare it with the RPC's own time.

    uv run python benchmarks/tracing_off.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from m3o.runtime.logging.tracing import (
    client_span,
    current_traceparent,
    inject,
    server_span,
    start_tracing,
    stop_tracing,
    tracing_on,
)
from m3o.runtime.rpc import Dispatcher, InProcessTransport
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto import helloworld_pb2 as pb
from m3o.services.helloworld.proto.client import SPEC, HelloworldClient


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def helper_costs(uses: int) -> dict[str, float]:
    """Nanoseconds per use of each helper, tracing off, less an empty loop's."""
    metadata: dict[str, str] = {}
    attributes: dict[str, str] = {}

    def timed(body: str) -> float:
        started = time.perf_counter_ns()
        for _ in range(uses):
            if body == "server_span":
                with server_span("x", metadata, attributes):
                    pass
            elif body == "client_span":
                with client_span("x", metadata, attributes):
                    pass
            elif body == "inject":
                inject(metadata)
            elif body == "current_traceparent":
                current_traceparent()
            elif body == "tracing_on":
                tracing_on()
        return (time.perf_counter_ns() - started) / uses

    empty = timed("")
    names = ["server_span", "client_span", "inject", "current_traceparent", "tracing_on"]
    return {name: max(timed(name) - empty, 0.0) for name in names}


async def rpc_micros(calls: int) -> float:
    local = InProcessTransport()
    local.register(Dispatcher(SPEC, Helloworld(), authenticator=None, rules=None))
    client = HelloworldClient(local)
    request = pb.CallRequest(name="bench")
    for _ in range(1000):  # warm up
        await client.call(request)
    started = time.perf_counter()
    for _ in range(calls):
        await client.call(request)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    assert not tracing_on()
    for name, nanos in helper_costs(1_000_000).items():
        print(f"off: {name:<20} {nanos:7.1f} ns per use")
    off = [asyncio.run(rpc_micros(options.calls)) for _ in range(options.rounds)]
    start_tracing("m3o-bench", exporter=Dropping())
    try:
        on = [asyncio.run(rpc_micros(options.calls)) for _ in range(options.rounds)]
    finally:
        stop_tracing()
    print(f"in-process RPC, tracing off: {statistics.median(off):7.2f} us per call")
    print(f"in-process RPC, tracing on:  {statistics.median(on):7.2f} us per call (2 spans)")


if __name__ == "__main__":
    main()
