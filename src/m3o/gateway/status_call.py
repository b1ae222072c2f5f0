"""``/status/call``: the platform's status page, answered with an HTTP status and a map.

``GET`` or ``POST`` (any body, ignored; other methods 405), no credentials needed: the front calls
``Status.Call`` without any (it is public and skips the access rules), so the page answers
while auth or Redis is down. 200 ``{"<part>": "OK", ...}`` when every part is healthy, else
500 with the same map where the unhealthy parts read ``NOT_HEALTHY``. When the status
service itself cannot answer, 500 ``{"status": "NOT_HEALTHY"}``; the cause is logged.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.status.proto import status_pb2 as pb
from m3o.services.status.proto.client import SPEC, StatusService

__all__ = ["PATHS", "status_routes"]

PATHS = ("/status/call", "/status/Call")
"""Where the page is served (M3O's clients use the lower-case path)."""

_ALLOWED = ("GET", "POST")
_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_log = get_logger(__name__)


def status_routes(status: StatusService, *, timeout: float | None) -> list[Route]:
    """The routes, calling ``status`` (a client without credentials)."""

    async def call(request: Request) -> Response:
        if request.method not in _ALLOWED:
            raise HTTPException(405, headers={"Allow": ", ".join(_ALLOWED)})
        try:
            answer = await status.call(pb.CallRequest(), timeout=timeout)
        except M3OError as exc:
            _log.warning("status.unanswered", code=exc.code, detail=exc.detail)
            return JSONResponse({SPEC.service: "NOT_HEALTHY"}, status_code=500)
        statuses = dict(sorted(answer.statuses.items()))  # a map's order is not kept
        return JSONResponse(statuses, status_code=200 if answer.healthy else 500)

    # Every method reaches the endpoint, so that others are 405 here rather than 404 from
    # the platform API's routes behind.
    return [Route(path, call, methods=_EVERY_METHOD) for path in PATHS]
