"""What goes on the wire: URLs, headers, JSON bodies and answers (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from m3o.client._errors import InvalidResponse, error_from_response

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "api_path",
    "auth_headers",
    "check_address",
    "decode_message",
    "encode",
    "http_url",
    "read_answer",
    "websocket_url",
]

DEFAULT_ADDRESS = "http://127.0.0.1:8080"
"""Where ``m3o serve`` listens by default."""

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for an answer (a call) or for the websocket handshake (a stream)."""

USER_AGENT = "m3o-python-client"

_SCHEMES = {"http": "ws", "https": "wss"}


def check_address(address: str) -> str:
    """The address without a trailing slash; ValueError unless it is an http(s) URL."""
    parts = urlsplit(address)
    if parts.scheme not in _SCHEMES or not parts.netloc:
        raise ValueError(f"the address must be an http:// or https:// URL, not {address!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the address must not have a query or fragment: {address!r}")
    return address.rstrip("/")


def api_path(api: str, endpoint: str) -> str:
    """``v1/<api>/<endpoint>``: ``call``, ``Helloworld.Call`` and ``keys/generate`` all work.

    The gateway reads ``/v1/helloworld/call`` and ``/v1/helloworld/Helloworld/Call`` as the
    same endpoint, so a dotted endpoint is sent as path segments.
    """
    if not api or "/" in api:
        raise ValueError(f"the API name must be one path segment, not {api!r}")
    parts = endpoint.replace(".", "/").split("/")
    if not endpoint or any(not part for part in parts):
        raise ValueError(f"not an endpoint: {endpoint!r}")
    return "/".join(["v1", *(quote(part, safe="") for part in [api, *parts])])


def http_url(address: str, path: str) -> str:
    return f"{address}/{path.lstrip('/')}"


def websocket_url(address: str, path: str) -> str:
    """The ws:// (or wss://) URL of a path: the address with its scheme swapped."""
    scheme, rest = address.split("://", 1)
    return f"{_SCHEMES[scheme]}://{rest}/{path.lstrip('/')}"


def auth_headers(token: str) -> dict[str, str]:
    """The Authorization header for a key or token; none for anonymous calls."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def encode(request: Mapping[str, Any] | None) -> bytes:
    """A request as JSON (None is the empty request)."""
    return orjson.dumps(dict(request) if request is not None else {})


def _object(raw: bytes | str, what: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidResponse(f"the {what} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidResponse(f"the {what} is not a JSON object")
    return data


def read_answer(status_code: int, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object of a successful answer; the typed error of any other."""
    if 200 <= status_code < 300:
        return _object(body, "answer")
    raise error_from_response(status_code, body, headers)


def decode_message(frame: bytes | str) -> dict[str, Any]:
    """A stream message: the JSON object of a text frame, or of a binary frame holding JSON."""
    return _object(frame, "stream message")
