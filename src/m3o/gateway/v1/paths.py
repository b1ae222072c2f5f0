"""From a ``/v1/...`` path to the API and endpoint it names.

``/v1/<a>/<b>`` calls API ``lower(a)``, endpoint ``Title(a).Title(b)``;
``/v1/<a>/<b>/<c>[/...]`` calls API ``lower(a)``, endpoint ``Title(b).Title(c)`` (later parts
are ignored). Fewer than two parts: NotFound. Empty parts (``//``, a trailing ``/``) do not
count.
"""

from __future__ import annotations

from dataclasses import dataclass

from m3o.gateway.routing import title
from m3o.runtime.errors import NotFound

__all__ = ["ERROR_ID", "NOT_FOUND", "CallPath", "parse_path"]

ERROR_ID = "v1"
"""The id of the public API's errors (``v1.blocked`` for refusals)."""
NOT_FOUND = "Not found"


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


def parse_path(path: str) -> CallPath:
    """The call ``path`` (what follows ``/v1/``) names; NotFound when it names none."""
    parts = [part for part in path.split("/") if part]
    if len(parts) < 2:
        raise NotFound(ERROR_ID, NOT_FOUND)
    if len(parts) == 2:
        handler, method = parts[0], parts[1]
    else:
        handler, method = parts[1], parts[2]
    return CallPath(
        api=parts[0].lower(),
        endpoint=f"{title(handler)}.{title(method)}",
        handler=handler,
        method=method,
        short=len(parts) == 2,
    )
