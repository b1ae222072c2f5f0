"""Checks of what a publisher sends: each raises BadRequest naming the bad field.

Names are lower-cased before they are checked and stored. Documents (OpenAPI, examples,
Postman) must be JSON objects. Icons are https (or http) URLs or ``data:image/`` URLs: they
end up in web pages, so no other scheme passes. Pricing and quota keys are
``<Service>.<Method>``, matched case-insensitively, so two keys differing only in case are
refused, as is a key naming an endpoint the descriptors do not declare.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from m3o.runtime.errors import BadRequest
from m3o.runtime.money import MAX_FREE_QUOTA, MAX_PRICE, check_limit
from m3o.runtime.rpc.endpoints import is_endpoint_name
from m3o.services.publicapi.descriptors import Descriptors, Endpoint

__all__ = [
    "GRPC",
    "HTTP",
    "LOCAL_PREFIX",
    "MAX_DESCRIPTORS_BYTES",
    "MAX_DOCUMENT_CHARS",
    "Upstream",
    "check_document",
    "check_icon",
    "check_prices",
    "check_text",
    "check_upstream",
    "check_usage_endpoint",
    "normalise_name",
    "storable",
]

GRPC = "grpc"
HTTP = "http"
LOCAL_PREFIX = "local:"
MAX_NAME_LENGTH = 64
MAX_DOCUMENT_CHARS = 2_000_000
"""Largest OpenAPI, examples or Postman document (characters)."""
MAX_ICON_CHARS = 256_000
MAX_DESCRIPTORS_BYTES = 4_000_000
MAX_TEXT_CHARS = {"display_name": 200, "category": 64, "description": 100_000, "owner_id": 200}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOCAL_SERVICE = re.compile(r"^[a-z][a-z0-9_-]*$")
_GRPC_TARGET_SCHEMES = ("dns:", "unix:", "ipv4:", "ipv6:")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_DATA_IMAGE = re.compile(r"^data:image/[a-z0-9.+-]+(;[a-z0-9=.+-]+)*(;base64)?,", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Upstream:
    address: str
    protocol: str

    @property
    def local(self) -> bool:
        """A service of the platform itself (``local:<service>``), reached in process."""
        return self.address.startswith(LOCAL_PREFIX)


def storable(value: str) -> bool:
    """Whether a database can hold ``value`` (PostgreSQL text cannot hold NUL)."""
    return "\x00" not in value


def _check_storable(error_id: str, field: str, value: str) -> str:
    if not storable(value):
        raise BadRequest(error_id, f"{field} must not contain NUL characters")
    return value


def normalise_name(error_id: str, raw: str) -> str:
    """The API name, trimmed and lower-cased; BadRequest when it cannot be a URL segment."""
    name = raw.strip().lower()
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(error_id, f"API name is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise BadRequest(
            error_id, "API name must be lower-case letters, digits, '-' or '_' (not first)"
        )
    return name


def check_text(error_id: str, field: str, value: str) -> str:
    limit = MAX_TEXT_CHARS[field]
    if len(value) > limit:
        raise BadRequest(error_id, f"{field} is longer than {limit} characters")
    return _check_storable(error_id, field, value)


def check_document(error_id: str, field: str, value: str) -> str:
    """``value`` when it is empty or a JSON object of reasonable size."""
    if not value:
        return value
    if len(value) > MAX_DOCUMENT_CHARS:
        raise BadRequest(error_id, f"{field} is longer than {MAX_DOCUMENT_CHARS} characters")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRequest(error_id, f"{field} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequest(error_id, f"{field} must be a JSON object")
    return value


def check_icon(error_id: str, value: str) -> str:
    if not value:
        return value
    _check_storable(error_id, "icon", value)
    if len(value) > MAX_ICON_CHARS:
        raise BadRequest(error_id, f"icon is longer than {MAX_ICON_CHARS} characters")
    if _DATA_IMAGE.match(value):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("https", "http") and parts.netloc:
        return value
    raise BadRequest(error_id, "icon must be an https URL or a data:image URL")


def _check_grpc_address(error_id: str, address: str) -> None:
    if address.startswith(_GRPC_TARGET_SCHEMES) and len(address.split(":", 1)[1]) > 0:
        return
    match = _HOST_PORT.match(address)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise BadRequest(
            error_id, f"Upstream address {address!r} is not host:port (grpc upstreams)"
        )


def _check_http_address(error_id: str, address: str) -> str:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise BadRequest(
            error_id, f"Upstream address {address!r} is not an http:// or https:// base URL"
        )
    return address.rstrip("/")


def check_upstream(error_id: str, address: str, protocol: str) -> Upstream:
    """The upstream, protocol defaulting to grpc; BadRequest when it cannot be reached so."""
    address = address.strip()
    protocol = protocol.strip().lower() or GRPC
    if not address:
        raise BadRequest(error_id, "Missing upstream address")
    if len(address) > 500 or not storable(address) or any(ch.isspace() for ch in address):
        raise BadRequest(error_id, "Upstream address is invalid")
    if protocol not in (GRPC, HTTP):
        raise BadRequest(error_id, "Upstream protocol must be grpc or http")
    if address.startswith(LOCAL_PREFIX):
        if protocol != GRPC or not _LOCAL_SERVICE.match(address[len(LOCAL_PREFIX) :]):
            raise BadRequest(error_id, "A local upstream is local:<service> with protocol grpc")
        return Upstream(address, protocol)
    if protocol == HTTP:
        return Upstream(_check_http_address(error_id, address), protocol)
    _check_grpc_address(error_id, address)
    return Upstream(address, protocol)


_MAXIMA = {"pricing": (MAX_PRICE, True), "quotas": (MAX_FREE_QUOTA, False)}
"""Largest value (and whether it is money) of each map :func:`check_prices` checks."""


def check_prices(
    error_id: str, field: str, prices: Mapping[str, int], endpoints: Iterable[Endpoint] | None
) -> dict[str, int]:
    """``prices`` (pricing or quotas) when every key names one endpoint once and every value
    is between 0 and its maximum (:mod:`m3o.runtime.money`). ``endpoints`` None: the
    endpoints are unknown (no descriptors)."""
    known = None if endpoints is None else {e.name.lower() for e in endpoints}
    seen: set[str] = set()
    for key, value in sorted(prices.items()):
        if not is_endpoint_name(key):
            raise BadRequest(error_id, f"{field} key {key!r} is not <Service>.<Method>")
        maximum, money = _MAXIMA.get(field, (MAX_PRICE, True))
        check_limit(error_id, f"{field} of {key}", value, maximum=maximum, money=money)
        lowered = key.lower()
        if lowered in seen:
            raise BadRequest(error_id, f"{field} names {key} twice (keys ignore case)")
        seen.add(lowered)
        if known is not None and lowered not in known:
            raise BadRequest(error_id, f"{field} names {key}, which the API does not have")
    return dict(prices)


USAGE_TENANT_FIELD = "tenant_id"
"""The request field of a usage endpoint naming the tenant (``micro/<project>``)."""


def check_usage_endpoint(error_id: str, name: str, descriptors: Descriptors | None) -> str:
    """The usage endpoint as the descriptors spell it (``""`` for none): a
    ``<Service>.<Method>``; with descriptors, a declared unary method whose request has a
    string ``tenant_id`` field."""
    if not name:
        return ""
    if not is_endpoint_name(name):
        raise BadRequest(error_id, f"usage_endpoint {name!r} is not <Service>.<Method>")
    if descriptors is None:
        return name
    found = next((e for e in descriptors.endpoints if e.name.lower() == name.lower()), None)
    if found is None:
        raise BadRequest(error_id, f"usage_endpoint names {name}, which the API does not have")
    if found.client_streaming or found.server_streaming:
        raise BadRequest(error_id, f"usage_endpoint {found.name} must not stream")
    request = descriptors.pool.FindMessageTypeByName(found.request_type)
    tenant = request.fields_by_name.get(USAGE_TENANT_FIELD)
    if tenant is None or tenant.type != tenant.TYPE_STRING or tenant.is_repeated:
        raise BadRequest(
            error_id, f"usage_endpoint {found.name} must take a string {USAGE_TENANT_FIELD}"
        )
    return found.name
