"""The HTTP front: the platform API, probes, metrics and the OpenAPI document.

``create_app(directory, transport, ...)`` builds the ASGI application; the v1 public API is
mounted into it through ``extra_routes`` (``Mount("/v1", v1_app)``).
"""

from __future__ import annotations

from m3o.gateway.app import DEFAULT_MAX_BODY_BYTES, GatewaySettings, Hook, create_app
from m3o.gateway.health import ReadinessCheck
from m3o.gateway.metrics import Metrics
from m3o.gateway.routing import ServiceDirectory, directory, title

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "GatewaySettings",
    "Hook",
    "Metrics",
    "ReadinessCheck",
    "ServiceDirectory",
    "create_app",
    "directory",
    "title",
]
