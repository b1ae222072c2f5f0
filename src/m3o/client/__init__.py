"""Python client of M3O's public API: unary calls over HTTP, streams over websockets.

    async with Client(api_key) as client:
        answer = await client.call("helloworld", "call", {"name": "John"})
        async for message in client.stream("helloworld", "stream", {"name": "John"}):
            ...

Errors: ``APIError`` (with ``id``, ``code``, ``detail``, ``status``) and one subclass per
kind, ``NetworkError`` / ``RequestTimeout``, ``InvalidResponse``; all are ``ClientError``.
``SyncClient`` is the same without an event loop.
"""

from m3o.client._client import Client
from m3o.client._errors import (
    APIError,
    BadRequestError,
    ClientError,
    ConflictError,
    ForbiddenError,
    InternalServerError,
    InvalidResponse,
    NetworkError,
    NotFoundError,
    RequestTimeout,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from m3o.client._stream import Stream
from m3o.client._sync import SyncClient, SyncStream
from m3o.client._wire import DEFAULT_ADDRESS, DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT",
    "APIError",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "ForbiddenError",
    "InternalServerError",
    "InvalidResponse",
    "NetworkError",
    "NotFoundError",
    "RequestTimeout",
    "ServiceUnavailableError",
    "Stream",
    "SyncClient",
    "SyncStream",
    "TooManyRequestsError",
    "UnauthorizedError",
]
