"""From a platform API path to the RPC it calls.

``/<service>/<endpoint>`` calls ``Title(endpoint)`` of the service's handler named
``Title(service)`` (or of its only handler); ``/<service>/<Handler>/<endpoint>`` picks the
handler by ``Title(Handler)``. Method and handler names also match case-insensitively as a
fallback, so ``/customers/markverified`` reaches ``Customers.MarkVerified``.

The reference served some handlers from another service than ours does:
:data:`REFERENCE_HANDLERS` keeps its paths working (``/publicapi/explore/search`` reaches
``Explore.Search`` of the explore service; the endpoint, its label and its errors are
explore's).

The table is built once, when the application is created; resolving a path is a few
dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from m3o.runtime.errors import NotFound, error_id
from m3o.runtime.rpc import MethodSpec, ServiceSpec
from m3o.runtime.rpc.endpoints import title

__all__ = [
    "ERROR_ID",
    "REFERENCE_HANDLERS",
    "Endpoint",
    "RouteTable",
    "ServiceDirectory",
    "directory",
    "title",
]

ServiceDirectory = Mapping[str, Sequence[ServiceSpec]]
"""Platform service name (``customers``) -> the protobuf services it serves."""

ERROR_ID = "api"
"""The id of errors the HTTP front raises before any service is involved."""

_MAX_ECHO = 64

REFERENCE_HANDLERS: Mapping[tuple[str, str], str] = {("publicapi", "Explore"): "explore"}
"""(service, handler) of a reference path -> the service whose default handler serves it
here: the reference's publicapi service also served its Explore handler."""

_T = TypeVar("_T")


def directory(*specs: ServiceSpec) -> dict[str, tuple[ServiceSpec, ...]]:
    """Group service specs by the platform service that serves them."""
    found: dict[str, list[ServiceSpec]] = {}
    for spec in specs:
        found.setdefault(spec.service, []).append(spec)
    return {name: tuple(group) for name, group in found.items()}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One routable RPC: what to call and how to name it in errors and metrics."""

    spec: ServiceSpec
    method: MethodSpec
    error_id: str
    """``<service>.<method lower-cased>``, as the dispatcher names its errors."""
    label: str
    """The canonical path (``/customers/Create``), a bounded metrics label."""

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming or self.method.client_streaming


@dataclass(frozen=True, slots=True)
class _Handler:
    exact: Mapping[str, Endpoint]
    folded: Mapping[str, Endpoint]

    def find(self, name: str) -> Endpoint | None:
        found = self.exact.get(title(name))
        return found if found is not None else self.folded.get(name.lower())


@dataclass(frozen=True, slots=True)
class _Service:
    default: _Handler | None
    exact: Mapping[str, _Handler]
    folded: Mapping[str, _Handler]

    def find(self, name: str) -> _Handler | None:
        found = self.exact.get(title(name))
        return found if found is not None else self.folded.get(name.lower())


def _first_wins(pairs: Sequence[tuple[str, _T]]) -> dict[str, _T]:
    out: dict[str, _T] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _handler(service: str, spec: ServiceSpec, is_default: bool) -> _Handler:
    endpoints: list[Endpoint] = []
    for method in spec.methods.values():
        prefix = f"/{service}" if is_default else f"/{service}/{spec.handler}"
        endpoints.append(
            Endpoint(spec, method, error_id(spec.service, method.name), f"{prefix}/{method.name}")
        )
    return _Handler(
        exact={e.method.name: e for e in endpoints},
        folded=_first_wins([(e.method.name.lower(), e) for e in endpoints]),
    )


def _default_spec(service: str, specs: Sequence[ServiceSpec]) -> ServiceSpec | None:
    named = [spec for spec in specs if spec.handler == title(service)]
    if named:
        return named[0]
    return specs[0] if len(specs) == 1 else None


class RouteTable:
    """Every platform API endpoint of a :data:`ServiceDirectory`, resolved by URL parts."""

    def __init__(self, services: ServiceDirectory) -> None:
        table: dict[str, _Service] = {}
        for name, specs in services.items():
            if name != name.lower() or not name or "/" in name:
                raise ValueError(f"service name {name!r} must be lower-case and non-empty")
            wrong = [spec.full_name for spec in specs if spec.service != name]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} not served by {name!r}")
            default = _default_spec(name, specs)
            handlers = _first_wins(
                [(spec.handler, _handler(name, spec, spec is default)) for spec in specs]
            )
            table[name] = _Service(
                default=handlers.get(default.handler) if default is not None else None,
                exact=handlers,
                folded=_first_wins([(h.lower(), found) for h, found in handlers.items()]),
            )
        self._services = _with_reference_handlers(table)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint once, in directory order."""
        seen: dict[str, Endpoint] = {}
        for service in self._services.values():
            for handler in service.exact.values():
                for endpoint in handler.exact.values():
                    seen.setdefault(endpoint.label, endpoint)
        return list(seen.values())

    def resolve(self, service: str, handler: str | None, endpoint: str) -> Endpoint:
        """The endpoint a path names; NotFound("api", ...) when there is none."""
        found_service = self._services.get(service.lower())
        if found_service is None:
            raise NotFound(ERROR_ID, f"Service {_echo(service.lower())} not found")
        found_handler = found_service.default if handler is None else found_service.find(handler)
        if found_handler is None and handler is not None:
            raise NotFound(
                ERROR_ID, f"Handler {_echo(title(handler))} of {service.lower()} not found"
            )
        found = found_handler.find(endpoint) if found_handler is not None else None
        if found is None:
            raise NotFound(
                ERROR_ID, f"Endpoint {_echo(title(endpoint))} of {service.lower()} not found"
            )
        return found


def _with_reference_handlers(table: dict[str, _Service]) -> dict[str, _Service]:
    """``table`` where each of :data:`REFERENCE_HANDLERS` whose two services are served
    and whose handler is not also answers at the reference's path."""
    for (name, handler), target in REFERENCE_HANDLERS.items():
        service, serving = table.get(name), table.get(target)
        if service is None or serving is None or serving.default is None:
            continue
        if handler in service.exact:
            continue
        exact = {**service.exact, handler: serving.default}
        table[name] = _Service(
            default=service.default,
            exact=exact,
            folded=_first_wins([(h.lower(), found) for h, found in exact.items()]),
        )
    return table


def _echo(text: str) -> str:
    """User input quoted back in an error, bounded."""
    return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
