"""What the client raises, and how answers and websocket closes become those errors.

One exception tree:

    ClientError                 anything this package raises on purpose
      APIError                  the platform answered with an error: id, code, detail, status
        BadRequestError           400
        UnauthorizedError         401
        ForbiddenError            403
        NotFoundError             404
        ConflictError             409
        TooManyRequestsError      429 (``retry_after`` from the ``Retry-After`` header)
        InternalServerError       500 (and any other 5xx the platform names)
        ServiceUnavailableError   503
      NetworkError              the platform could not be reached, or the connection broke
        RequestTimeout            no answer within the timeout
      InvalidResponse           an answer that is not what the public API sends

An error answer is M3O's ``{"id", "code", "detail", "status"}``; an answer that is not (a
proxy's HTML page, say) still becomes the ``APIError`` of its HTTP status, with the start of
the body as its detail, so callers handle one kind of failure per status.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson

__all__ = [
    "APIError",
    "BadRequestError",
    "ClientError",
    "ConflictError",
    "ForbiddenError",
    "InternalServerError",
    "InvalidResponse",
    "NetworkError",
    "NotFoundError",
    "RequestTimeout",
    "ServiceUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "error_from_close",
    "error_from_response",
]

# An error answer that is not M3O's JSON is shown cut to this many characters.
_DETAIL_LIMIT = 500
# Websocket close codes 4000-4999 are the application's: we read 4000 + HTTP status.
_APPLICATION_CLOSE_BASE = 4000
_NORMAL_CLOSE = 1000


class ClientError(Exception):
    """Base of every error this package raises on purpose."""


class APIError(ClientError):
    """The platform answered with an error.

    ``id`` names where it was raised (``v1``, ``v1.blocked``, ``helloworld.call``), ``code``
    is the HTTP status it stands for, ``detail`` the message for people and ``status`` the
    HTTP reason phrase. ``request_id`` is the ``X-Request-Id`` of the call, when the
    platform gave one (quote it to support).
    """

    def __init__(
        self,
        id: str,  # noqa: A002 - the wire name is "id"
        code: int,
        detail: str,
        status: str = "",
        *,
        request_id: str = "",
    ) -> None:
        super().__init__(detail)
        self.id = id
        self.code = code
        self.detail = detail
        self.status = status or _reason(code)
        self.request_id = request_id

    def to_dict(self) -> dict[str, Any]:
        """The error as M3O's JSON document."""
        return {"id": self.id, "code": self.code, "detail": self.detail, "status": self.status}

    def __str__(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.code!r}, {self.detail!r})"


class BadRequestError(APIError):
    """400: the request is not valid."""


class UnauthorizedError(APIError):
    """401: no key or token, or one the platform does not accept."""


class ForbiddenError(APIError):
    """403: the key or token may not do this (blocked, scope, usage cap, credit)."""


class NotFoundError(APIError):
    """404: no such API, endpoint or record."""


class ConflictError(APIError):
    """409: the record exists already."""


class TooManyRequestsError(APIError):
    """429: over the rate limit; ``retry_after`` is in seconds (None when not given)."""

    def __init__(
        self,
        id: str,  # noqa: A002 - the wire name is "id"
        code: int,
        detail: str,
        status: str = "",
        *,
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(id, code, detail, status, request_id=request_id)
        self.retry_after = retry_after


class InternalServerError(APIError):
    """500 (or another 5xx without a class of its own): the platform failed."""


class ServiceUnavailableError(APIError):
    """503: the platform cannot decide or serve the call right now; try again later."""


class NetworkError(ClientError):
    """The platform could not be reached, or the connection broke before an answer."""


class RequestTimeout(NetworkError):
    """No answer within the timeout."""


class InvalidResponse(ClientError):
    """An answer that is not what the public API sends (not a JSON object, say)."""


_BY_CODE: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: TooManyRequestsError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _kind(code: int) -> type[APIError]:
    kind = _BY_CODE.get(code)
    if kind is not None:
        return kind
    if 500 <= code <= 599:
        return InternalServerError
    return APIError


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "")
    try:
        return float(value)
    except ValueError:
        return None  # absent, or an HTTP date: the caller picks its own back-off


def _error_document(raw: bytes | str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and "code" in data and "detail" in data:
        return data
    return None


def _build(
    code: int,
    error_id: str,
    detail: str,
    status: str,
    *,
    request_id: str = "",
    retry_after: float | None = None,
) -> APIError:
    kind = _kind(code)
    if kind is TooManyRequestsError:
        return TooManyRequestsError(
            error_id, code, detail, status, request_id=request_id, retry_after=retry_after
        )
    return kind(error_id, code, detail, status, request_id=request_id)


def error_from_response(
    status_code: int, body: bytes, headers: Mapping[str, str] | None = None
) -> APIError:
    """The error an HTTP error answer carries (``headers`` keys lower-case)."""
    headers = headers or {}
    request_id = headers.get("x-request-id", "")
    retry_after = _retry_after(headers)
    document = _error_document(body)
    if document is None:
        text = body.decode("utf-8", "replace").strip()[:_DETAIL_LIMIT]
        return _build(
            status_code,
            "",
            text or _reason(status_code),
            "",
            request_id=request_id,
            retry_after=retry_after,
        )
    try:
        code = int(document["code"])
    except (TypeError, ValueError):
        code = status_code
    # The document's code is the error's kind; the HTTP status is only the fallback.
    return _build(
        code or status_code,
        str(document.get("id", "")),
        str(document.get("detail", "")),
        str(document.get("status", "")),
        request_id=request_id,
        retry_after=retry_after,
    )


# Standard close codes that say why the server ended a stream.
_CLOSE_KINDS: dict[int, int] = {
    1001: 503,  # going away: the server is shutting down
    1003: 400,  # unsupported data
    1007: 400,  # invalid frame payload data
    1008: 403,  # policy violation
    1009: 400,  # message too big
    1011: 500,  # internal error
    1012: 503,  # service restart
    1013: 503,  # try again later
}


def error_from_close(code: int | None, reason: str) -> ClientError | None:
    """The error a websocket close means; None for a normal end of the stream.

    The reason is read as M3O's error JSON when it is one (the websocket close reason holds
    at most 123 bytes, so long details may not fit); otherwise the close code decides the
    kind: 4000 + an HTTP status is that status, standard codes map to the nearest one, and a
    connection closed without a close frame is a ``NetworkError``.
    """
    if code == _NORMAL_CLOSE:
        return None
    document = _error_document(reason) if reason else None
    if document is not None:
        return error_from_response(500, reason.encode())
    if code is None or code == 1006:
        return NetworkError(f"the stream's connection was lost{': ' + reason if reason else ''}")
    status = code - _APPLICATION_CLOSE_BASE if code >= _APPLICATION_CLOSE_BASE else None
    if status is None or not 400 <= status <= 599:
        status = _CLOSE_KINDS.get(code, 500)
    return _build(status, "", reason or _reason(status), "")
