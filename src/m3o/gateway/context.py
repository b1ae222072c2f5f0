"""What the request middleware learns once per request and leaves in the ASGI scope.

The platform API (and later the v1 API mounted beside it) read these instead of working
them out again: the request id (taken from ``X-Request-Id`` when sane, else generated), the
client's address, and the bounded route label metrics and logs use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import Scope

from m3o.runtime.logging import is_sane_request_id
from m3o.runtime.store.ids import time_ordered_id

__all__ = [
    "CLIENT_ADDRESS",
    "REQUEST_ID",
    "ROUTE_LABEL",
    "ClientAddress",
    "client_address",
    "new_request_id",
    "request_id",
    "route_label",
    "set_route_label",
]

REQUEST_ID = "m3o.request_id"
CLIENT_ADDRESS = "m3o.client_address"
ROUTE_LABEL = "m3o.route"


def new_request_id(offered: str | None) -> str:
    """The caller's request id when it is short and plain, else a fresh one: 32 hex digits
    that sort by when they were made (:func:`~m3o.runtime.store.ids.time_ordered_id`, without a
    system call, as ``uuid4()`` made for every request)."""
    if offered and is_sane_request_id(offered):
        return offered
    return time_ordered_id()


def request_id(scope: Scope) -> str:
    found = scope.get(REQUEST_ID)
    return found if isinstance(found, str) else ""


def client_address(scope: Scope) -> str:
    found = scope.get(CLIENT_ADDRESS)
    return found if isinstance(found, str) else ""


def route_label(scope: Scope) -> str:
    """The label of the route that answered: set by an endpoint, else the matched route's
    template, else ``<unmatched>``."""
    label = scope.get(ROUTE_LABEL)
    if isinstance(label, str):
        return label
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "<unmatched>"


def set_route_label(scope: Scope, label: str) -> None:
    scope[ROUTE_LABEL] = label


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Works out the client's address: the peer's, or, when the peer is a trusted proxy,
    the last ``X-Forwarded-For`` entry that is not one.

    Each proxy appends the address it received from, so the list reads client, proxy,
    proxy; only what trusted proxies appended is believed. A client may write anything
    at the start of the header, so the first entry is never taken over the last
    untrusted one.
    """

    trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()

    @classmethod
    def trusting(cls, networks: Sequence[str]) -> ClientAddress:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self.trusted_proxies or not self._trusted(peer):
            return peer
        hops: list[str] = [
            hop.strip()
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
            if hop.strip()
        ]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer
