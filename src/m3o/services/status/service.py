"""Wiring of the status service.

``Call`` is public and skips the access rules: the status page must answer while auth (or
the Redis behind token checks) is down, to say so. The HTTP front serves it at
``/status/call`` (``m3o.gateway.status_call``), not on the platform API.
"""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.status.checks import checked_services, platform_checks
from m3o.services.status.handler import Status
from m3o.services.status.proto.client import SPEC, StatusHandler

__all__ = ["PUBLIC_METHODS", "definition"]

PUBLIC_METHODS = frozenset(SPEC.methods)
"""Every endpoint is public (the auth service's default rules say so too)."""


async def _build(deps: Dependencies) -> ServiceParts:
    if deps.health is None:
        raise RuntimeError("the status service needs the process's health probe")
    config = deps.config.status
    timeout = config.timeout.total_seconds()
    checks = platform_checks(
        services=checked_services(config.services, deps.health.services),
        probe=deps.health,
        sessions=deps.sessions,
        counters=deps.counters,
        timeout=timeout,
    )
    handler: StatusHandler = Status(checks=checks, timeout=timeout)
    return ServiceParts(handlers=[Handler(SPEC, handler, public=PUBLIC_METHODS)])


definition = ServiceDefinition(
    name="status",
    build=_build,
    specs=(SPEC,),
    platform_api=False,
)
