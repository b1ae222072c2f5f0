"""The URL path of each endpoint of an API, as /v1 serves it and its OpenAPI document shows it.

``/<api>/<Method>`` for the methods of the API's main service, ``/<api>/<Service>/<Method>``
for any other service (``/v1/<api>/<endpoint>`` and ``/v1/<api>/<handler>/<endpoint>``).
The main service is the one named like the API (case-insensitively: ``Helloworld`` of
``helloworld``), or the only service when there is just one.
"""

from __future__ import annotations

from collections.abc import Sequence

from m3o.services.publicapi.descriptors import Endpoint

__all__ = ["endpoint_path", "main_service", "resolve_path"]


def _short(service: str) -> str:
    return service.rsplit(".", 1)[-1]


def main_service(api: str, endpoints: Sequence[Endpoint]) -> str | None:
    """The full name of the API's main service, None when there is none."""
    services = sorted({endpoint.service for endpoint in endpoints})
    for service in services:
        if _short(service).lower() == api.lower():
            return service
    return services[0] if len(services) == 1 else None


def endpoint_path(api: str, endpoint: Endpoint, main: str | None) -> str:
    """The path of ``endpoint`` under ``/v1`` (``/helloworld/Call``)."""
    if endpoint.service == main:
        return f"/{api}/{endpoint.method}"
    return f"/{api}/{_short(endpoint.service)}/{endpoint.method}"


def resolve_path(api: str, endpoints: Sequence[Endpoint], parts: Sequence[str]) -> Endpoint | None:
    """The endpoint ``/<api>/<parts...>`` names (case-insensitively), None if none."""
    if len(parts) == 1:
        main = main_service(api, endpoints)
        if main is None:
            return None
        wanted = f"{_short(main)}.{parts[0]}".lower()
    elif len(parts) == 2:
        wanted = f"{parts[0]}.{parts[1]}".lower()
    else:
        return None
    for endpoint in endpoints:
        if endpoint.name.lower() == wanted:
            return endpoint
    return None
