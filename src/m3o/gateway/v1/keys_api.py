"""Key management under /v1: ``/v1/api/keys/generate|list|revoke`` and
``/v1/api/apis/list``, each the v1 service's method of the same job, called with the
caller's JWT exactly as the platform API calls any method (same transcoding, errors and
metadata; the v1 service checks the caller).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from m3o.gateway.platform_api import ALLOWED_METHODS, PlatformAPI
from m3o.gateway.routing import RouteTable
from m3o.runtime.rpc import ServiceSpec, Transport
from m3o.services.v1.proto.client import SPEC

__all__ = ["KEY_PATHS", "key_routes"]

KEY_PATHS = {
    "/v1/api/keys/generate": "GenerateKey",
    "/v1/api/keys/list": "ListKeys",
    "/v1/api/keys/revoke": "RevokeKey",
    "/v1/api/apis/list": "ListAPIs",
}
"""Path -> the v1 service's method."""


def _endpoint(
    platform: PlatformAPI, service: str, method: str
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request.scope["path_params"] = {"service": service, "endpoint": method}
        return await platform.handle(request)

    return endpoint


def key_routes(
    transport: Transport,
    *,
    max_body_bytes: int,
    call_timeout: float | None,
    spec: ServiceSpec = SPEC,
) -> list[BaseRoute]:
    """The four routes, calling ``spec``'s service through ``transport``."""
    platform = PlatformAPI(
        RouteTable({spec.service: (spec,)}),
        transport,
        max_body_bytes=max_body_bytes,
        call_timeout=call_timeout,
    )
    methods = sorted(ALLOWED_METHODS)
    return [
        Route(path, _endpoint(platform, spec.service, method), methods=methods)
        for path, method in KEY_PATHS.items()
    ]
