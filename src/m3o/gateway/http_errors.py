"""The one place errors become HTTP responses.

Every error answer is exactly ``{"id", "code", "detail", "status"}`` with ``code`` as the
HTTP status. An :class:`~m3o.runtime.errors.M3OError` keeps its id, kind and detail;
Starlette's own HTTP errors (an unmatched path, a wrong method on ``/healthz``) get the id
``api``; anything else is a generic 500 whose cause is only logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from m3o.gateway.routing import ERROR_ID
from m3o.runtime.errors import Internal, M3OError, NotFound, TooManyRequests
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import INTERNAL_DETAIL

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "error_response",
    "http_exception_handler",
    "internal_error_body",
    "m3o_error_handler",
]

_log = get_logger(__name__)

DEFAULT_RETRY_AFTER = 1
"""Seconds a 429 answer suggests waiting when the error does not say (rate limits are
per second)."""

JSON = "application/json"


def _retry_after(error: M3OError) -> int:
    # A TooManyRequests raised in this process may say how long to wait; one that crossed
    # a gRPC hop carries only id, kind and detail.
    seconds = getattr(error, "retry_after", None)
    if isinstance(seconds, int | float) and seconds > 0:
        return max(1, round(seconds))
    return DEFAULT_RETRY_AFTER


def error_response(error: M3OError, headers: Mapping[str, str] | None = None) -> Response:
    """The HTTP answer for an error kind: its JSON and status, Retry-After on 429."""
    extra = dict(headers or {})
    if isinstance(error, TooManyRequests):
        extra.setdefault("Retry-After", str(_retry_after(error)))
    return Response(error.to_json(), status_code=error.code, headers=extra, media_type=JSON)


def internal_error_body() -> bytes:
    """The generic 500 document, for failures outside any endpoint."""
    return Internal(ERROR_ID, INTERNAL_DETAIL).to_json()


async def m3o_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`M3OError`."""
    if not isinstance(exc, M3OError):  # pragma: no cover - registered for M3OError only
        raise exc
    return error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for its own HTTP errors (404, 405, ...)."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it only
        raise exc
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return error_response(NotFound(ERROR_ID, "Not found"), exc.headers)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    if exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        _log.error("http.error", status=exc.status_code, detail=exc.detail)
        detail = INTERNAL_DETAIL
    else:
        detail = exc.detail or phrase
    body = {"id": ERROR_ID, "code": exc.status_code, "detail": detail, "status": phrase}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, headers=exc.headers, media_type=JSON
    )
