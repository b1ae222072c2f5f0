"""Channels between the platform's processes (``service_channel``): a service that comes up
after its caller's channel has been failing is reached soon, not after gRPC's default
backoff (which by then leaves seconds between attempts, growing to two minutes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from m3o.runtime.rpc import service_channel

FAILING_FOR = 3.0
"""Seconds the service is away: gRPC's default backoff would next try about 4.2-6.2 s after
the first attempt, so 1.2 s or more after the service is back."""
REACHED_WITHIN = 1.5
"""Seconds after the service is back: attempts are at most 0.5 s (+20 % jitter) apart."""


async def test_a_service_back_after_its_callers_failed_for_seconds_is_reached_within_one(
    tmp_path: Path,
) -> None:
    address = f"unix:{tmp_path}/late.sock"
    loop = asyncio.get_running_loop()
    channel = service_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    server = grpc.aio.server()
    try:
        away_until = loop.time() + FAILING_FOR
        while loop.time() < away_until:  # callers asking, as health checks do, and failing
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(0.05)  # pacing the callers, not waiting for an outcome

        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(address)
        await server.start()
        back = loop.time()
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True)
        took = loop.time() - back
    finally:
        await server.stop(None)
        await channel.close(None)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert took < REACHED_WITHIN, f"reached {took:.2f} s after the service was back"
