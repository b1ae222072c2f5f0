"""Error kinds shared by every service.

One exception tree, one place to map it:

    M3OError
      BadRequest            400  INVALID_ARGUMENT
      Unauthorized          401  UNAUTHENTICATED
      Forbidden             403  PERMISSION_DENIED
      NotFound              404  NOT_FOUND
      Conflict              409  ALREADY_EXISTS
      TooManyRequests       429  RESOURCE_EXHAUSTED
      Internal              500  INTERNAL
      Unavailable           503  UNAVAILABLE
        DeadlineExceeded    503  DEADLINE_EXCEEDED

Over HTTP an error is exactly ``{"id", "code", "detail", "status"}``; over gRPC it is the
matching status code with that same JSON as the status details, so a client on either side
gets back the error that was raised.

DeadlineExceeded is the call whose deadline passed: an Unavailable (503, worth retrying)
that code tells apart by its kind, never by its text. Over HTTP it is the document it has
always been, ``"detail": "Deadline exceeded"`` with status 503; over gRPC its own status
code says what it is.

An error's id names where it arose, ``<service>.<method>`` lower-cased
(``customers.create``): :func:`error_id` builds it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc
import orjson

__all__ = [
    "BadRequest",
    "Conflict",
    "DeadlineExceeded",
    "Forbidden",
    "Internal",
    "M3OError",
    "NotFound",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "error_from_dict",
    "error_from_grpc",
    "error_from_json",
    "error_id",
]


def error_id(service: str, method: str) -> str:
    """The id of the errors of ``method`` of ``service``: ``error_id("customers", "Create")``
    is ``customers.create``. ``method`` may also be ``<Handler>.<Method>``
    (``Customers.Create``), as access rules name endpoints."""
    return f"{service}.{method.rsplit('.', 1)[-1].lower()}"


class M3OError(Exception):
    """An error meant for the caller: its id, kind and detail reach them unchanged."""

    code: ClassVar[int] = 500
    status: ClassVar[str] = "Internal Server Error"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, id: str, detail: str) -> None:  # noqa: A002 - the wire name is "id"
        super().__init__(detail)
        self.id = id
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "detail": self.detail, "status": self.status}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, M3OError)
            and type(other) is type(self)
            and (other.id, other.detail) == (self.id, self.detail)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.id, self.detail))


class BadRequest(M3OError):
    code = 400
    status = "Bad Request"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthorized(M3OError):
    code = 401
    status = "Unauthorized"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Forbidden(M3OError):
    code = 403
    status = "Forbidden"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(M3OError):
    code = 404
    status = "Not Found"
    grpc_code = grpc.StatusCode.NOT_FOUND


class Conflict(M3OError):
    code = 409
    status = "Conflict"
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class TooManyRequests(M3OError):
    code = 429
    status = "Too Many Requests"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Internal(M3OError):
    code = 500
    status = "Internal Server Error"
    grpc_code = grpc.StatusCode.INTERNAL


class Unavailable(M3OError):
    code = 503
    status = "Service Unavailable"
    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(Unavailable):
    """The call's deadline passed before it finished (``Deadline exceeded`` unless told)."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, id: str, detail: str = "Deadline exceeded") -> None:  # noqa: A002
        super().__init__(id, detail)


_BY_CODE: dict[int, type[M3OError]] = {
    kind.code: kind
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        TooManyRequests,
        Internal,
        Unavailable,
    )
}
_BY_GRPC: dict[grpc.StatusCode, type[M3OError]] = {k.grpc_code: k for k in _BY_CODE.values()}


def error_from_dict(data: dict[str, Any]) -> M3OError:
    """The error a ``{"id","code","detail","status"}`` document describes."""
    kind = _BY_CODE.get(int(data.get("code", 500)), Internal)
    return kind(str(data.get("id", "")), str(data.get("detail", "")))


def error_from_json(raw: str | bytes) -> M3OError | None:
    """Parse an error document; None when ``raw`` is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "code" not in data or "detail" not in data:
        return None
    return error_from_dict(data)


def error_from_grpc(code: grpc.StatusCode, details: str | None, default_id: str) -> M3OError:
    """Rebuild the error a gRPC status carries (our JSON in its details, or a bare status)."""
    deadline = code == grpc.StatusCode.DEADLINE_EXCEEDED
    if details:
        parsed = error_from_json(details)
        if parsed is not None:
            if deadline and type(parsed) is Unavailable:
                # Over HTTP a 503 is a 503; the gRPC status still tells the deadline apart.
                return DeadlineExceeded(parsed.id, parsed.detail)
            return parsed
    if deadline:
        return DeadlineExceeded(default_id)
    if code == grpc.StatusCode.CANCELLED:
        return Unavailable(default_id, "Call cancelled")
    kind = _BY_GRPC.get(code, Internal)
    detail = details if kind is not Internal and details else kind.status
    return kind(default_id, detail)
