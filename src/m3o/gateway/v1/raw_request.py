"""Endpoints whose upstream handler takes the raw HTTP request.

An endpoint whose request message is Micro's ``api.Request`` (``go.api.Request``,
``micro.api.Request`` or ``api.Request``: ``method``, ``path``, ``header``, ``get``,
``post``, ``body``, ``url``, maps of ``Pair{key, values}``) receives the HTTP request itself
rather than a JSON body: method, path, headers (never ``Authorization``, cookies or the
websocket key), query, body (as text) and URL. Fields the message lacks are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor

__all__ = ["RAW_REQUEST_TYPES", "is_raw_request", "raw_request_data"]

RAW_REQUEST_TYPES = frozenset({"go.api.Request", "micro.api.Request", "api.Request"})
_WITHHELD = frozenset({"authorization", "cookie", "sec-websocket-protocol"})


def is_raw_request(descriptor: Descriptor | None) -> bool:
    return descriptor is not None and descriptor.full_name in RAW_REQUEST_TYPES


def _pairs(items: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in items:
        out.setdefault(key, {"key": key, "values": []})["values"].append(value)
    return out


def raw_request_data(
    descriptor: Descriptor,
    *,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    body: bytes,
    url: str,
) -> dict[str, Any]:
    """The request message, as JSON, describing the HTTP request."""
    values: dict[str, Any] = {
        "method": method,
        "path": path,
        "header": _pairs((k, v) for k, v in headers if k.lower() not in _WITHHELD),
        "get": _pairs(query),
        "post": {},
        "body": body.decode("utf-8", errors="replace"),
        "url": url,
    }
    return {name: value for name, value in values.items() if name in descriptor.fields_by_name}
