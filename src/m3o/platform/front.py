"""The HTTP front of a platform process: the platform API, the public API (``/v1``, whose
upstream crashes are reported to the alerts service), Stripe's webhook
(``POST /stripe/webhook``, forwarded to the stripe service), the status page
(``/status/call``, answered by the status service) and the end-to-end check's
``/endtoend/check`` and ``/endtoend/mailin``, and the web console (``/console/``).

Shared by ``m3o serve`` (services in the same process) and ``m3o run gateway`` (services
over gRPC): both build the same application over their own transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from starlette.applications import Starlette

from m3o.console import console_routes, console_settings
from m3o.gateway.app import GatewaySettings, Hook, create_app
from m3o.gateway.endtoend_routes import endtoend_routes
from m3o.gateway.health import ReadinessCheck
from m3o.gateway.metrics import Metrics
from m3o.gateway.routing import ServiceDirectory
from m3o.gateway.status_call import status_routes
from m3o.gateway.stripe_webhook import stripe_webhook_route
from m3o.gateway.v1.alerts import ReportedAlerts
from m3o.gateway.v1.ports import EventSpill, ServedCharges, ServedHolds
from m3o.gateway.v1.routes import create_v1_routes
from m3o.gateway.v1.settings import PublicAPISettings
from m3o.gateway.v1.sources import platform_dependencies
from m3o.gateway.v1.targets import LocalServices
from m3o.runtime.config import Config
from m3o.runtime.counters import CounterStore
from m3o.runtime.events import Publisher
from m3o.runtime.rpc import TokenSource, Transport
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.proto.client import AlertsClient
from m3o.services.endtoend.proto.client import EndtoendClient
from m3o.services.publicapi.view import FIRST_LOAD_WAIT
from m3o.services.status.proto.client import StatusClient
from m3o.services.stripe.proto.client import StripeClient
from m3o.services.v1.proto.client import SPEC as V1

__all__ = ["build_front"]


def build_front(
    *,
    config: Config,
    transport: Transport,
    directory: ServiceDirectory,
    local_services: LocalServices,
    credentials: TokenSource,
    counters: CounterStore,
    publisher: Publisher,
    sessions: SessionFactory | None,
    metrics: Metrics,
    readiness: Sequence[ReadinessCheck],
    on_shutdown: Sequence[Hook] = (),
    spill: EventSpill | None = None,
    served: ServedCharges | None = None,
    served_holds: ServedHolds | None = None,
    catalog_wait: timedelta | None = FIRST_LOAD_WAIT,
) -> Starlette:
    """The front over ``directory`` (platform API) and the catalog's APIs (``/v1``).

    ``local_services`` are the services the public API may forward ``local:<service>``
    upstreams to (helloworld). ``credentials`` are the ``gateway`` service account's.
    ``on_shutdown`` hooks run after the public API has flushed its request events.
    ``spill`` takes the request events the public API cannot keep in memory (default: the
    publisher itself). ``served``: charges committed before answers (the local profile on
    SQLite, whose process owns ``counters``). ``served_holds``: served calls' holds
    committed by publishing their events in the same step (the platform profile).
    ``catalog_wait``: how long the server waits for the catalog's first load before it
    listens (None: until it is done); ``/readyz``'s ``catalog`` check says ``loading`` until
    then, and ``/v1`` calls are 503.
    """
    settings = GatewaySettings(
        cors_origins=tuple(config.api.cors_origins),
        trusted_proxies=tuple(config.api.trusted_proxies),
        call_timeout=config.api.timeout.total_seconds(),
    )
    sources = platform_dependencies(
        transport=transport,
        credentials=credentials,
        counters=counters,
        publisher=publisher,
        config=config,
        sessions=sessions,
        local_services=local_services,
        alerts=ReportedAlerts(AlertsClient(transport, credentials)),
        spill=spill,
        served=served,
        served_holds=served_holds,
        first_load_wait=catalog_wait,
    )
    v1 = create_v1_routes(
        sources.dependencies,
        PublicAPISettings.from_config(
            config.v1,
            max_body_bytes=settings.max_body_bytes,
            call_timeout=settings.call_timeout,
        ),
    )
    metrics.watch_request_events(v1.requests)
    # /v1/... is the public API's: the v1 service is served (and documented) at its key
    # management paths, never at the platform API's /v1/<Method>.
    platform_services = {name: specs for name, specs in directory.items() if name != V1.service}
    return create_app(
        platform_services,
        transport,
        metrics=metrics,
        readiness=[*readiness, *sources.readiness],
        settings=settings,
        on_startup=[*sources.on_startup, *v1.on_startup],
        # Shut-down hooks run in reverse: the public API drains first, then the catalog,
        # then the process's own hooks.
        on_shutdown=[*on_shutdown, *sources.on_shutdown, *v1.on_shutdown],
        # First: every public API call is matched there, before any other route.
        first_routes=v1.routes,
        extra_routes=[
            stripe_webhook_route(
                StripeClient(transport, credentials),
                max_body_bytes=settings.max_body_bytes,
                timeout=settings.call_timeout,
            ),
            # Anonymous: the page must answer while token checks cannot (auth, Redis down).
            *status_routes(StatusClient(transport, None), timeout=settings.call_timeout),
            *endtoend_routes(
                EndtoendClient(transport, credentials),
                max_body_bytes=settings.max_body_bytes,
                timeout=settings.call_timeout,
            ),
            # The web console at /console/ (and / redirecting there), calling the services
            # with the signed-in person's token.
            *console_routes(transport, console_settings(config), timeout=settings.call_timeout),
        ],
        documented=v1.documented,
    )
