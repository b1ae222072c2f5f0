"""What the async and sync streams share: connection options and websocket failures."""

from __future__ import annotations

from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from m3o.client._errors import (
    ClientError,
    NetworkError,
    RequestTimeout,
    error_from_close,
    error_from_response,
)
from m3o.client._wire import USER_AGENT, auth_headers

__all__ = ["MAX_MESSAGE_BYTES", "closed_error", "connect_options", "open_error"]

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The largest stream message accepted (the websockets default of 1 MiB is small for APIs)."""


def connect_options(token: str, open_timeout: float | None) -> dict[str, Any]:
    """Keyword arguments of ``websockets`` ``connect`` for a stream with this key or token."""
    return {
        "additional_headers": auth_headers(token),
        "user_agent_header": USER_AGENT,
        "open_timeout": open_timeout,
        "max_size": MAX_MESSAGE_BYTES,
    }


def open_error(exc: Exception, url: str) -> ClientError:
    """The error a failed websocket handshake means.

    A refused upgrade carries the platform's HTTP answer (M3O's error JSON for a bad key,
    an unknown API, a blocked call), which becomes the same typed error a call would raise.
    """
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return error_from_response(
            response.status_code, bytes(response.body or b""), response.headers
        )
    if isinstance(exc, TimeoutError):
        return RequestTimeout(f"no websocket handshake with {url} within the timeout")
    if isinstance(exc, ConnectionClosed):
        return closed_error(exc) or NetworkError(f"{url} closed the stream while opening it")
    return NetworkError(f"cannot open a stream to {url}: {exc}")


def closed_error(exc: ConnectionClosed) -> ClientError | None:
    """The error a closed stream means; None when the server ended it normally."""
    if exc.rcvd is None:
        if exc.sent is not None:
            # We closed it (aclose); reading after that is the end of the stream.
            return None
        return error_from_close(None, "")
    return error_from_close(exc.rcvd.code, exc.rcvd.reason)
