"""The process's health probe: services hosted here are running, others are asked over
gRPC health at their address, and in ``m3o serve`` a service not hosted is not running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from m3o.platform.health import NotServing, ProcessHealth


async def _no_events() -> None:
    return None


@pytest.fixture
async def served(workdir: Path) -> AsyncIterator[HealthServicer]:
    """A gRPC server with the health service at ``<workdir>/customers.sock``."""
    server = grpc.aio.server()
    checker = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(f"unix:{workdir}/customers.sock")
    await server.start()
    try:
        yield checker
    finally:
        await server.stop(None)


def _probe(workdir: Path, hosted: tuple[str, ...] = ("status",)) -> ProcessHealth:
    return ProcessHealth(
        services=("auth", "customers", "status"),
        hosted=lambda: hosted,
        address=lambda name: f"unix:{workdir}/{name}.sock",
        events=_no_events,
    )


async def test_a_serving_service_is_healthy_and_one_not_serving_is_not(
    served: HealthServicer, workdir: Path
) -> None:
    probe = _probe(workdir)
    try:
        await served.set("", health_pb2.HealthCheckResponse.SERVING)
        await probe.service("customers", 5)

        await served.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(NotServing, match="NOT_SERVING"):
            await probe.service("customers", 5)
    finally:
        await probe.close()


async def test_a_service_nobody_listens_for_fails_at_once(workdir: Path) -> None:
    probe = _probe(workdir)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(probe.service("auth", 30), timeout=20)
    finally:
        await probe.close()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_process_own_service_is_healthy_without_a_call(workdir: Path) -> None:
    probe = _probe(workdir, hosted=("status",))
    await probe.service("status", 1)  # no server at status.sock: not asked
    await probe.close()


async def test_without_other_processes_a_service_not_hosted_is_not_running() -> None:
    probe = ProcessHealth(
        services=("auth", "customers"),
        hosted=lambda: ("auth",),
        address=None,
        events=_no_events,
    )

    await probe.service("auth", 1)
    with pytest.raises(NotServing, match="customers is not running"):
        await probe.service("customers", 1)
    with pytest.raises(NotServing):
        await probe.service("mailchimp", 1)
    assert probe.services == ("auth", "customers")
