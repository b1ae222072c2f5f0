"""From an API and endpoint name to what the gateway calls: the upstream and its method.

The endpoint a path names is looked up among the endpoints the API's descriptors declare
by the rule of :mod:`m3o.runtime.rpc.endpoints` (``Title(a).Title(b)`` exactly, then
ignoring case, then for ``/v1/<api>/<method>`` a method of the API's main service), the
rule the catalog's OpenAPI documents follow too. The declared name is the endpoint's name
from then on (pricing, counters, events).

An ``http`` upstream without descriptors declares its endpoints by naming them in its prices
and free quotas: a path naming one of those (in any case) calls it under the declared
spelling (price, counters, events and the forwarded ``/<Service>/<Method>`` all use it).
Any other endpoint name (two identifiers and a dot) is forwarded as a unary call (the upstream says
whether it exists), free, and metered as the API's one :data:`UNKNOWN_ENDPOINT`, so callers
cannot create metric series or usage counters by inventing names. A ``local:<service>``
upstream is a service of the platform reached through the runtime transport: its methods
come from the service's own specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from m3o.gateway.v1.paths import ERROR_ID, CallPath
from m3o.gateway.v1.ports import ApiEndpoint, Catalog, CatalogEntry
from m3o.runtime.errors import NotFound, Unavailable
from m3o.runtime.rpc import MethodSpec, ServiceSpec
from m3o.runtime.rpc.endpoints import find_endpoint, is_endpoint_name

__all__ = [
    "GRPC",
    "HTTP",
    "LOCAL",
    "LOCAL_PREFIX",
    "NO_SUCH_API",
    "NO_SUCH_ENDPOINT",
    "UNAVAILABLE_API",
    "UNKNOWN_ENDPOINT",
    "UNREAD_CATALOG",
    "LocalServices",
    "Target",
    "Targets",
]

GRPC = "grpc"
HTTP = "http"
LOCAL = "local"
LOCAL_PREFIX = "local:"

NO_SUCH_API = "No such API"
NO_SUCH_ENDPOINT = "No such endpoint"
UNAVAILABLE_API = "API not available"
UNREAD_CATALOG = "The API catalog is not loaded yet"
"""Unavailable: a gateway that has not read the catalog (publicapi unreachable since it
started) cannot tell an unknown API from a published one."""
UNKNOWN_ENDPOINT = "unknown"
"""The endpoint name of every call to an undeclared endpoint of an API without descriptors
(declared names always have a dot, so it names no declared endpoint)."""

LocalServices = Mapping[str, Sequence[ServiceSpec]]
"""Platform service name (``helloworld``) -> the protobuf services it serves."""


@dataclass(frozen=True, slots=True)
class _LocalEndpoint:
    name: str
    service: str
    method: str
    request_type: str
    response_type: str
    client_streaming: bool
    server_streaming: bool


def _local_endpoints(specs: Sequence[ServiceSpec]) -> list[ApiEndpoint]:
    return [
        _LocalEndpoint(
            name=f"{spec.handler}.{method.name}",
            service=spec.full_name,
            method=method.name,
            request_type=method.request_type.DESCRIPTOR.full_name,
            response_type=method.response_type.DESCRIPTOR.full_name,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        )
        for spec in specs
        for method in spec.methods.values()
    ]


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint of one API, ready to be called."""

    api: str
    endpoint: str
    """``<Service>.<Method>`` as declared (:data:`UNKNOWN_ENDPOINT` when undeclared): the
    name that is priced, admitted, counted and reported."""
    entry: CatalogEntry
    kind: str
    """:data:`GRPC`, :data:`HTTP` or :data:`LOCAL`."""
    service: str
    """Full protobuf name of the service (the short name for an undeclared http one)."""
    method: str
    request_type: str = ""
    """Full protobuf name of the request message; empty when unknown."""
    response_type: str = ""
    client_streaming: bool = False
    server_streaming: bool = False
    local: tuple[ServiceSpec, MethodSpec] | None = None
    """The spec to call through the runtime transport (local upstreams)."""

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming

    @property
    def handler(self) -> str:
        """The service's short name (``Helloworld``)."""
        return self.service.rsplit(".", 1)[-1]

    @property
    def address(self) -> str:
        return self.entry.upstream.address


class Targets:
    """Resolves calls against the catalog (and the platform's own services)."""

    def __init__(self, catalog: Catalog, local: LocalServices | None = None) -> None:
        self._catalog = catalog
        self._local = local or {}

    def entry(self, api: str) -> CatalogEntry:
        """The published API; NotFound ``No such API``, or Unavailable while the catalog
        has never been read."""
        entry = self._catalog.get(api)
        if entry is None:
            if not self._catalog.loaded:
                raise Unavailable(ERROR_ID, UNREAD_CATALOG)
            raise NotFound(ERROR_ID, NO_SUCH_API)
        return entry

    def current(self, target: Target) -> bool:
        """Whether ``target`` was resolved against the catalog's current entry of its API
        (an API published again, or removed, is a new entry, or none)."""
        return self._catalog.get(target.api) is target.entry

    def resolve(self, path: CallPath) -> Target:
        """The target ``path`` names: NotFound for an unknown API or endpoint (the API's
        usage endpoint too: only the gateway calls it), Unavailable when the API cannot be
        called (no descriptors, local service not hosted)."""
        entry = self.entry(path.api)
        target = self._target(entry, path)
        usage = entry.usage_endpoint.lower()
        if usage and f"{target.handler}.{target.method}".lower() == usage:
            raise NotFound(ERROR_ID, NO_SUCH_ENDPOINT)
        return target

    def usage_target(self, entry: CatalogEntry) -> Target:
        """The endpoint reporting ``entry``'s unit usage (``entry.usage_endpoint``, set);
        raises as :meth:`resolve`."""
        service, _, method = entry.usage_endpoint.partition(".")
        path = CallPath(
            api=entry.name,
            endpoint=entry.usage_endpoint,
            handler=service,
            method=method,
            short=False,
        )
        return self._target(entry, path)

    def _target(self, entry: CatalogEntry, path: CallPath) -> Target:
        address = entry.upstream.address
        kind = LOCAL if address.startswith(LOCAL_PREFIX) else entry.upstream.protocol
        specs = self._local.get(address[len(LOCAL_PREFIX) :], ()) if kind == LOCAL else ()
        endpoints: Sequence[ApiEndpoint] = entry.endpoints or _local_endpoints(specs)
        if not endpoints:
            if kind != HTTP:
                raise Unavailable(ERROR_ID, UNAVAILABLE_API)
            return _undescribed(entry, path)
        found = find_endpoint(entry.name, endpoints, path.handler, path.method, short=path.short)
        if found is None:
            raise NotFound(ERROR_ID, NO_SUCH_ENDPOINT)
        local = _local_method(specs, found) if kind == LOCAL else None
        if kind == LOCAL and local is None:
            raise Unavailable(ERROR_ID, UNAVAILABLE_API)
        return Target(
            api=entry.name,
            endpoint=found.name,
            entry=entry,
            kind=kind,
            service=found.service,
            method=found.method,
            request_type=found.request_type,
            response_type=found.response_type,
            client_streaming=found.client_streaming,
            server_streaming=found.server_streaming,
            local=local,
        )


def _undescribed(entry: CatalogEntry, path: CallPath) -> Target:
    """The target of an http API without descriptors (see the module's docstring)."""
    declared = entry.declared_name(path.endpoint)
    name = declared or path.endpoint
    if not is_endpoint_name(name):
        raise NotFound(ERROR_ID, NO_SUCH_ENDPOINT)
    service, _, method = name.partition(".")
    return Target(
        api=entry.name,
        endpoint=declared or UNKNOWN_ENDPOINT,
        entry=entry,
        kind=HTTP,
        service=service,
        method=method,
    )


def _local_method(
    specs: Sequence[ServiceSpec], endpoint: ApiEndpoint
) -> tuple[ServiceSpec, MethodSpec] | None:
    for spec in specs:
        if spec.full_name == endpoint.service:
            method = spec.methods.get(endpoint.method)
            return None if method is None else (spec, method)
    return None
