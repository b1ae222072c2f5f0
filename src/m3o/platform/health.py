"""The process's :class:`~m3o.runtime.service.HealthProbe`: how the status service checks
the platform's services and event stream.

A service hosted in this process is running while the process is (``m3o serve`` hosts
them all). Any other is asked over gRPC, ``grpc.health.v1.Health/Check`` of its whole
server at its address (``server.service_address``), which ``m3o run <service>`` serves; in
``m3o serve`` there is no other process, so a service not hosted is not running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import service_channel

__all__ = ["NotServing", "ProcessHealth"]

_log = get_logger(__name__)


class NotServing(Exception):
    """A service is not running, or answers that it is not serving."""


class ProcessHealth:
    """Implements ``m3o.runtime.service.HealthProbe`` for one process.

    ``hosted`` names the services this process hosts (asked at each check: services are
    hosted after the probe is made); ``address`` gives another service's gRPC address, or
    is None where there are no other processes; ``events`` checks the event stream.
    """

    def __init__(
        self,
        *,
        services: Sequence[str],
        hosted: Callable[[], Collection[str]],
        address: Callable[[str], str] | None,
        events: Callable[[], Awaitable[None]],
    ) -> None:
        self._services = tuple(services)
        self._hosted = hosted
        self._address = address
        self._events = events
        self._channels: dict[str, grpc.aio.Channel] = {}

    @property
    def services(self) -> tuple[str, ...]:
        return self._services

    async def service(self, name: str, timeout: float) -> None:
        if name in self._hosted():
            return
        if self._address is None or name not in self._services:
            raise NotServing(f"{name} is not running")
        channel = self._channels.get(name)
        if channel is None:
            channel = service_channel(self._address(name))
            self._channels[name] = channel
        stub = health_pb2_grpc.HealthStub(channel)
        # No wait_for_ready: a service that is not listening fails at once.
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise NotServing(
                f"{name} answers {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"
            )

    async def events(self) -> None:
        await self._events()

    async def close(self) -> None:
        """Close the channels to other services."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
