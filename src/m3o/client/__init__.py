"""Python client of M3O's public API: unary calls over HTTP, streams over websockets.

    async with Client(api_key) as client:
        answer = await client.call("helloworld", "call", {"name": "John"})
        async for message in client.stream("helloworld", "stream", {"name": "John"}):
            ...

Errors: ``APIError`` (with ``id``, ``code``, ``detail``, ``status``) and one subclass per
kind, ``NetworkError`` / ``RequestTimeout``, ``InvalidResponse``; all are ``ClientError``.
``SyncClient`` is the same without an event loop.
"""

import importlib
from typing import TYPE_CHECKING

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
from m3o.client._wire import DEFAULT_ADDRESS, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from m3o.client._client import Client
    from m3o.client._stream import Stream
    from m3o.client._sync import SyncClient, SyncStream

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

_CLIENTS = {
    "Client": "m3o.client._client",
    "Stream": "m3o.client._stream",
    "SyncClient": "m3o.client._sync",
    "SyncStream": "m3o.client._sync",
}
"""The classes that need httpx and websockets, imported when first used: a program that
imports the package for its errors or defaults (the ``m3o`` command, whose ``m3o run``
never calls the API) does not pay for them (0.17 s)."""


def __getattr__(name: str) -> object:
    module = _CLIENTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
