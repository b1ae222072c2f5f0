"""The public API: ``/v1/<api>/<endpoint>`` with API keys, admission, forwarding, metering
and websockets, and the key-management paths under ``/v1/api/``.

``create_v1_routes(dependencies, settings)`` builds the routes (mount them in
``create_app``'s ``extra_routes``) and the hooks that start and stop the background work;
:func:`m3o.gateway.v1.sources.platform_dependencies` builds the dependencies from the
platform's services.
"""

from __future__ import annotations

from m3o.gateway.v1.ports import (
    Alerts,
    ApiEndpoint,
    ApiKey,
    BalanceLoader,
    Catalog,
    CatalogEntry,
    KeyDirectory,
    PlannedCall,
    Quotas,
)
from m3o.gateway.v1.routes import V1Dependencies, V1Routes, create_v1_routes
from m3o.gateway.v1.settings import PublicAPISettings

__all__ = [
    "Alerts",
    "ApiEndpoint",
    "ApiKey",
    "BalanceLoader",
    "Catalog",
    "CatalogEntry",
    "KeyDirectory",
    "PlannedCall",
    "PublicAPISettings",
    "Quotas",
    "V1Dependencies",
    "V1Routes",
    "create_v1_routes",
]
