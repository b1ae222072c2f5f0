"""A streaming call over a websocket, as an async iterator of messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from m3o.client._errors import ClientError
from m3o.client._websocket import closed_error, connect_options, open_error
from m3o.client._wire import decode_message, encode

__all__ = ["Stream"]


class Stream:
    """One streaming call: ``async for message in stream`` yields each message the API sends.

    The websocket opens on first use (``async with``, iteration or ``send``), with the key in
    the ``Authorization`` header, and the request goes as the first text frame. Iteration
    ends when the server closes the stream normally; a close with an error raises the typed
    error (``ForbiddenError``, ``TooManyRequestsError``, ...). ``send`` sends further
    messages (bidirectional endpoints; each is metered like a call). Leaving ``async with``,
    breaking out and calling ``aclose``, or closing the client closes the websocket.

    Waiting for a message has no timeout (a stream may be quiet for long); the handshake
    has the client's timeout, and websocket pings notice a dead connection.
    """

    def __init__(
        self,
        url: str,
        token: str,
        request: Mapping[str, Any] | None,
        *,
        open_timeout: float | None,
        on_close: Callable[[Stream], None] | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._first = encode(request)
        self._open_timeout = open_timeout
        self._on_close = on_close
        self._connection: ClientConnection | None = None
        self._finished = False

    def __repr__(self) -> str:
        return f"Stream({self._url!r})"

    async def open(self) -> None:
        """Connect and send the request (done for you by iteration, ``send`` and ``async with``)."""
        await self._opened()

    async def _opened(self) -> ClientConnection:
        if self._connection is not None:
            return self._connection
        if self._finished:
            raise ClientError("the stream is closed")
        try:
            connection = await connect(
                self._url, **connect_options(self._token, self._open_timeout)
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._finish()
            raise open_error(exc, self._url) from None
        self._connection = connection
        try:
            await connection.send(self._first.decode())
        except ConnectionClosed as exc:
            await self.aclose()
            raise open_error(exc, self._url) from None
        return connection

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._finished:
            raise StopAsyncIteration
        connection = await self._opened()
        try:
            frame = await connection.recv()
        except ConnectionClosed as exc:
            await self.aclose()
            error = closed_error(exc)
            if error is None:
                raise StopAsyncIteration from None
            raise error from None
        return decode_message(frame)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one more message on the stream (after the request)."""
        connection = await self._opened()
        try:
            await connection.send(encode(message).decode())
        except ConnectionClosed as exc:
            await self.aclose()
            raise closed_error(exc) or ClientError("the stream has ended") from None

    async def aclose(self) -> None:
        """Close the websocket (normal close); iteration ends. Safe to call twice."""
        connection, self._connection = self._connection, None
        self._finish()
        if connection is not None:
            await connection.close()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            if self._on_close is not None:
                self._on_close(self)

    async def __aenter__(self) -> Stream:
        await self._opened()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
