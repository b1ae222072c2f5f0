"""From a ``/v1/...`` path to the API and endpoint it names.

``/v1/<a>/<b>`` calls API ``lower(a)``, endpoint ``Title(a).Title(b)``;
``/v1/<a>/<b>/<c>[/...]`` calls API ``lower(a)``, endpoint ``Title(b).Title(c)`` (later parts
are ignored). Fewer than two parts: NotFound. Empty parts (``//``, a trailing ``/``) do not
count.

The path is read as the client sent it, before any percent-decoding
(:func:`raw_call_path`), and every part must be 1 to :data:`MAX_PART` ASCII letters, digits,
``_`` or ``-``. Anything else (a percent-encoded character of any kind, ``.`` or ``..``,
a space, a unicode look-alike) names no endpoint: NotFound, before the key is looked up and
long before admission. So the name that is priced, the name that is admitted and the path
that is forwarded are built from the same checked parts, and no decoding step further down
can turn one into another (``/v1/paid/call%3F`` was once admitted as the unpriced
``Paid.Call?`` and forwarded as ``/Paid/Call``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m3o.runtime.errors import NotFound
from m3o.runtime.rpc.endpoints import endpoint_name

__all__ = ["ERROR_ID", "MAX_PART", "NOT_FOUND", "PREFIX", "CallPath", "parse_path", "raw_call_path"]

ERROR_ID = "v1"
"""The id of the public API's errors (``v1.blocked`` for refusals)."""
NOT_FOUND = "Not found"
PREFIX = "/v1/"
MAX_PART = 128
"""Characters in one part of a call path."""

_PART = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_PART}}}")


@dataclass(frozen=True, slots=True)
class CallPath:
    api: str
    """Lower-cased."""
    endpoint: str
    """``Title(handler).Title(method)``: ``Helloworld.Call``."""
    handler: str
    """The handler part as written (``helloworld`` of ``/v1/helloworld/call``)."""
    method: str
    """The method part as written."""
    short: bool
    """Whether the path had two parts (``/v1/<api>/<method>``)."""


def raw_call_path(scope: Mapping[str, Any]) -> str:
    """What follows ``/v1/`` in the path of the request as it was sent (percent-encoding
    intact), from the ASGI ``raw_path``; the decoded path when the server gives none."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        root = str(scope.get("root_path", "")).encode("latin-1", errors="replace")
        if root and raw.startswith(root):
            raw = raw[len(root) :]
        if raw.startswith(PREFIX.encode()):
            return raw[len(PREFIX) :].decode("latin-1")
    path = str(scope.get("path", ""))
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


def parse_path(path: str) -> CallPath:
    """The call ``path`` (what follows ``/v1/``, as sent) names; NotFound when it names
    none."""
    parts = [part for part in path.split("/") if part]
    if len(parts) < 2 or not all(_PART.fullmatch(part) for part in parts):
        raise NotFound(ERROR_ID, NOT_FOUND)
    if len(parts) == 2:
        handler, method = parts[0], parts[1]
    else:
        handler, method = parts[1], parts[2]
    return CallPath(
        api=parts[0].lower(),
        endpoint=endpoint_name(handler, method),
        handler=handler,
        method=method,
        short=len(parts) == 2,
    )
