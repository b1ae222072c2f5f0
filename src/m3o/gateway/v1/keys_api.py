"""Key management under /v1, each path the v1 service's method of the same job, called
with the caller's JWT exactly as the platform API calls any method (same transcoding,
errors and metadata; the v1 service checks the caller):

- customers: ``/v1/api/keys/generate|list|revoke|roll`` and ``/v1/api/apis/list``;
- admins (and services): ``/v1/api/keys/block|unblock|delete|import``.

These are the v1 service's only HTTP paths: ``/v1/<anything>`` else is the public API.
``ResolveKey`` (the gateway's own lookup) has none. :func:`key_endpoints` describes the
paths for ``/openapi.json``; :func:`key_path` finds the path of a method (``m3o call v1``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from m3o.gateway.platform_api import ALLOWED_METHODS, PlatformAPI
from m3o.gateway.routing import Endpoint, RouteTable
from m3o.runtime.errors import error_id
from m3o.runtime.rpc import ServiceSpec, Transport
from m3o.services.v1.proto.client import SPEC

__all__ = ["INTERNAL_METHODS", "KEY_PATHS", "key_endpoints", "key_path", "key_routes"]

KEY_PATHS = {
    "/v1/api/keys/generate": "GenerateKey",
    "/v1/api/keys/list": "ListKeys",
    "/v1/api/keys/revoke": "RevokeKey",
    "/v1/api/keys/roll": "RollKey",
    "/v1/api/keys/block": "BlockKey",
    "/v1/api/keys/unblock": "UnblockKey",
    "/v1/api/keys/delete": "DeleteCustomer",
    "/v1/api/keys/import": "ImportKeys",
    "/v1/api/apis/list": "ListAPIs",
}
"""Path -> the v1 service's method."""

INTERNAL_METHODS = frozenset({"ResolveKey"})
"""The v1 service's methods with no HTTP path: only services call them, over RPC."""


def key_path(method: str) -> str | None:
    """The path serving the v1 method named ``method`` (any case), or None."""
    wanted = method.lower()
    return next((path for path, name in KEY_PATHS.items() if name.lower() == wanted), None)


def key_endpoints(spec: ServiceSpec = SPEC) -> list[Endpoint]:
    """Every key-management path as an endpoint, labelled with its path."""
    return [
        Endpoint(spec, spec.methods[name], error_id(spec.service, name), path)
        for path, name in KEY_PATHS.items()
    ]


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
) -> list[Route]:
    """The key-management routes, calling ``spec``'s service through ``transport``."""
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
