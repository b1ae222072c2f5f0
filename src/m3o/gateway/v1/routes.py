"""Assembling the public API: its routes and the hooks that start and stop its background
work.

Mount the routes as they are (they carry their ``/v1`` prefix) in ``create_app``'s
``extra_routes``, and pass ``documented`` as its ``documented`` (``/openapi.json``); run
``on_startup`` hooks at start and ``on_shutdown`` hooks at stop (they flush the request
events, so a graceful stop loses none).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.routing import BaseRoute, Route, WebSocketRoute

from m3o.gateway.routing import Endpoint
from m3o.gateway.v1.batching import AdmissionBatcher, Admissions, DirectAdmissions
from m3o.gateway.v1.calls import PublicCalls
from m3o.gateway.v1.credentials import KeyCache
from m3o.gateway.v1.forward_grpc import GrpcForwarder
from m3o.gateway.v1.forward_http import HttpForwarder
from m3o.gateway.v1.forward_local import LocalForwarder
from m3o.gateway.v1.forwarders import Forwarders
from m3o.gateway.v1.gate import Gate
from m3o.gateway.v1.holds import Holds
from m3o.gateway.v1.http_endpoint import ALLOWED_METHODS, HttpCalls
from m3o.gateway.v1.keys_api import key_endpoints, key_routes
from m3o.gateway.v1.metering import RequestLog
from m3o.gateway.v1.ports import (
    Alerts,
    BalanceLoader,
    Catalog,
    EventSpill,
    KeyDirectory,
    Quotas,
    ServedCharges,
    ServedHolds,
)
from m3o.gateway.v1.public_route import PublicApiRoute
from m3o.gateway.v1.settings import PublicAPISettings
from m3o.gateway.v1.targets import LocalServices, Targets
from m3o.gateway.v1.tokens import UpstreamTokens
from m3o.gateway.v1.units import UnitUsage
from m3o.gateway.v1.websocket_endpoint import WebsocketCalls
from m3o.runtime.counters import CounterStore
from m3o.runtime.events import Publisher
from m3o.runtime.rpc import TokenSource, Transport
from m3o.runtime.store import SessionFactory

__all__ = ["V1Dependencies", "V1Routes", "create_v1_routes"]

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class V1Dependencies:
    """What the public API is built from (see :mod:`m3o.gateway.v1.sources` for the
    platform's own implementations)."""

    transport: Transport
    """Reaches the platform's services: the v1 service (key management) and
    ``local:<service>`` upstreams."""
    catalog: Catalog
    keys: KeyDirectory
    quotas: Quotas
    balances: BalanceLoader
    counters: CounterStore
    tokens: UpstreamTokens
    publisher: Publisher
    sessions: SessionFactory | None = None
    """With it, each batch of request events is published in one transaction."""
    spill: EventSpill | None = None
    """Where request events go past the in-memory buffer (the platform's outbox); default:
    the publisher itself (the local profile's event log is durable storage)."""
    local_services: LocalServices = field(default_factory=dict)
    """Every platform service this process can reach, for ``local:<service>`` upstreams."""
    alerts: Alerts | None = None
    forwarders: Forwarders | None = None
    """Default: the runtime transport, ``grpc.aio`` and ``aiohttp``."""
    credentials: TokenSource | None = None
    """The gateway's own service token, sent to APIs' usage endpoints."""
    served: ServedCharges | None = None
    """With it (``counters`` is owned by this process), each served call's charge and its
    request event are committed together before its answer leaves, and no holds are
    kept: a reservation lives in memory until then (see ``v1/README.md``)."""
    served_holds: ServedHolds | None = None
    """With it, a served call's hold is committed by publishing its request event and
    removing the hold in one atomic step (the platform profile: holds and event streams on
    one Redis), instead of being noted, published by the request log, then settled."""


@dataclass(frozen=True)
class V1Routes:
    routes: list[BaseRoute]
    on_startup: list[Hook]
    on_shutdown: list[Hook]
    calls: PublicCalls
    requests: RequestLog
    holds: Holds
    units: UnitUsage
    documented: list[Endpoint] = field(default_factory=list)
    """The key-management paths, for ``create_app(documented=...)`` (``/openapi.json``)."""


def create_v1_routes(deps: V1Dependencies, settings: PublicAPISettings | None = None) -> V1Routes:
    settings = settings or PublicAPISettings()
    forwarders = deps.forwarders or Forwarders(
        local=LocalForwarder(deps.transport),
        grpc=GrpcForwarder(max_answer_bytes=settings.max_answer_bytes),
        http=HttpForwarder(max_answer_bytes=settings.max_answer_bytes),
    )
    holds = Holds(deps.counters, served=deps.served_holds)
    # With served charges (one process owning the counters) no holds are kept: a release
    # is the counter store's own, in memory.
    keeps_holds = deps.served is None
    batcher: Admissions = (
        AdmissionBatcher(deps.counters, release=holds.release)
        if keeps_holds
        # Owned counters decide in memory: a batch would save no round trip.
        else DirectAdmissions(deps.counters)
    )
    requests = RequestLog(
        deps.publisher,
        deps.sessions,
        counters=deps.counters,
        max_buffered=settings.request_events_buffer,
        spill=deps.spill,
        alerts=deps.alerts,
    )
    targets = Targets(deps.catalog, deps.local_services)
    units = UnitUsage(
        targets=targets,
        forwarders=forwarders,
        quotas=deps.quotas,
        credentials=deps.credentials,
        alerts=deps.alerts,
        ttl=settings.unit_usage_ttl.total_seconds(),
        timeout=settings.unit_usage_timeout,
    )
    calls = PublicCalls(
        keys=KeyCache(deps.keys, ttl=settings.key_cache_ttl),
        targets=targets,
        gate=Gate(
            batcher,
            deps.quotas,
            deps.balances,
            fail_open_free=settings.fail_open_free,
            tier_ttl=settings.key_cache_ttl,
            holds=holds if keeps_holds else None,
            units=units,
        ),
        forwarders=forwarders,
        tokens=deps.tokens,
        requests=requests,
        alerts=deps.alerts,
        upstream_timeout=settings.upstream_timeout,
        served=deps.served,
    )
    http = HttpCalls(calls, max_body_bytes=settings.max_body_bytes)
    websocket = WebsocketCalls(calls)

    async def start() -> None:
        await requests.start()
        if keeps_holds:
            await holds.start(requests.publish)

    async def stop() -> None:
        await batcher.drain()
        await calls.drain()
        await requests.stop()
        if keeps_holds:
            await holds.stop()
        await units.close()
        await forwarders.close()

    keys = key_routes(
        deps.transport,
        max_body_bytes=settings.max_body_bytes,
        call_timeout=settings.call_timeout,
    )
    routes: list[BaseRoute] = [
        PublicApiRoute(
            {route.path: route for route in keys},
            Route("/v1/{path:path}", http.handle, methods=sorted(ALLOWED_METHODS)),
            WebSocketRoute("/v1/{path:path}", websocket.handle),
        )
    ]
    return V1Routes(
        routes=routes,
        on_startup=[start],
        on_shutdown=[stop],
        calls=calls,
        requests=requests,
        holds=holds,
        units=units,
        documented=key_endpoints(),
    )
