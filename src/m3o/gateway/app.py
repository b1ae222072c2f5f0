"""The HTTP front's application factory.

Routes, in the order they are tried:

- ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``;
- ``extra_routes``: the v1 public API (``Mount("/v1", v1_app)``) and endpoints that take
  the raw HTTP request (Stripe webhook, inbound mail, status), which must therefore come
  before the generic platform routes;
- ``/<service>/<endpoint>`` and ``/<service>/<Handler>/<endpoint>``: the platform API.

Everything that can be worked out once (route table, OpenAPI document, trusted proxy
networks) is built here, not per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from m3o.gateway.context import ClientAddress
from m3o.gateway.health import DEFAULT_CHECK_TIMEOUT, Health, ReadinessCheck
from m3o.gateway.http_errors import http_exception_handler, m3o_error_handler
from m3o.gateway.metrics import Metrics
from m3o.gateway.middleware import RequestMiddleware
from m3o.gateway.openapi import openapi_document
from m3o.gateway.platform_api import PlatformAPI
from m3o.gateway.routing import Endpoint, RouteTable, ServiceDirectory
from m3o.runtime.errors import M3OError
from m3o.runtime.rpc import DEFAULT_TIMEOUT, Transport

__all__ = ["DEFAULT_MAX_BODY_BYTES", "GatewaySettings", "Hook", "create_app"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Hook = Callable[[], Awaitable[None]]
"""A start-up or shut-down step (open a pool, start consumers, flush a batch)."""

_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_CORS_HEADERS = ("authorization", "content-type", "x-request-id", "idempotency-key")
_CORS_EXPOSED = ("x-request-id", "retry-after")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How the HTTP front behaves; the defaults suit the local profile."""

    cors_origins: Sequence[str] = ()
    """Origins browsers may call from (``https://console.example.com``); none by default,
    ``*`` for any."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body accepted; larger is 413 ``Request body too large``."""
    trusted_proxies: Sequence[str] = ()
    """Networks (``10.0.0.0/8``) of proxies whose ``X-Forwarded-For`` names the client.
    Without one, the client is the peer address."""
    call_timeout: float | None = DEFAULT_TIMEOUT
    """Deadline of each platform API call, in seconds; None means no deadline."""
    readiness_timeout: float = DEFAULT_CHECK_TIMEOUT
    """Seconds each readiness check may take."""
    access_log: bool = True
    """Write one log line per request."""
    title: str = "M3O platform API"
    """Title of the OpenAPI document."""
    version: str = "1"
    """Version of the OpenAPI document."""


def _lifespan(
    on_startup: Sequence[Hook], on_shutdown: Sequence[Hook]
) -> Callable[[Starlette], AsyncIterator[None]]:
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for hook in on_startup:
                await hook()
            # Once started, shut-down hooks run in reverse order, each even if an earlier one
            # failed; a failed start-up runs none (the process is going down anyway).
            for hook in on_shutdown:
                stack.push_async_callback(hook)
            yield

    return lifespan


def _json_endpoint(body: bytes) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return endpoint


def _metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, headers={"Content-Type": content_type})

    return endpoint


def create_app(
    directory: ServiceDirectory,
    transport: Transport,
    *,
    metrics: Metrics | None = None,
    readiness: Sequence[ReadinessCheck] = (),
    settings: GatewaySettings | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    extra_routes: Sequence[BaseRoute] = (),
    first_routes: Sequence[BaseRoute] = (),
    documented: Sequence[Endpoint] = (),
) -> Starlette:
    """The HTTP front over ``directory``'s services, reached through ``transport``.

    Pass the same ``metrics`` as the dispatchers' observer to expose RPC metrics on
    ``/metrics`` too. ``on_startup`` hooks run in order when the server starts,
    ``on_shutdown`` hooks in reverse order when it stops. ``documented`` are endpoints of
    ``extra_routes`` listed in ``/openapi.json`` beside the platform API's, at their label.
    ``first_routes`` are tried before every other route (health and metrics included): the
    public API's, which every call reaches (the router tries its routes one by one).
    """
    settings = settings or GatewaySettings()
    metrics = metrics or Metrics()
    table = RouteTable(directory)
    health = Health(readiness, timeout=settings.readiness_timeout)
    openapi = orjson.dumps(
        openapi_document(
            [*table.endpoints(), *documented], title=settings.title, version=settings.version
        )
    )
    platform = PlatformAPI(
        table,
        transport,
        max_body_bytes=settings.max_body_bytes,
        call_timeout=settings.call_timeout,
    )
    routes: list[BaseRoute] = [
        *first_routes,
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", _metrics_endpoint(metrics), methods=["GET"]),
        Route("/openapi.json", _json_endpoint(openapi), methods=["GET"]),
        *extra_routes,
        # Every method reaches the endpoint, which answers 404 before 405.
        Route("/{service}/{endpoint}", platform.handle, methods=_EVERY_METHOD),
        Route("/{service}/{handler}/{endpoint}", platform.handle, methods=_EVERY_METHOD),
    ]
    middleware = [
        Middleware(
            RequestMiddleware,
            metrics=metrics,
            client_address=ClientAddress.trusting(settings.trusted_proxies),
            access_log=settings.access_log,
        )
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],  # the methods any endpoint serves
                allow_headers=list(_CORS_HEADERS),
                expose_headers=list(_CORS_EXPOSED),
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={M3OError: m3o_error_handler, HTTPException: http_exception_handler},
        lifespan=asynccontextmanager(_lifespan(on_startup, on_shutdown)),
    )
    # An API answers a trailing slash with 404 rather than a redirect of the POST.
    app.router.redirect_slashes = False
    return app
