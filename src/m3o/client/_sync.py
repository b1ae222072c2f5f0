"""The blocking twin of ``Client`` and ``Stream``, for scripts and the ``m3o`` command."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from m3o.client._errors import ClientError, NetworkError, RequestTimeout
from m3o.client._websocket import closed_error, connect_options, open_error
from m3o.client._wire import (
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    api_path,
    auth_headers,
    check_address,
    decode_message,
    encode,
    http_url,
    read_answer,
    websocket_url,
)

__all__ = ["SyncClient", "SyncStream"]


class SyncClient:
    """``Client`` for code without an event loop; same arguments, errors and answers."""

    def __init__(
        self,
        token: str = "",
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._address = check_address(address)
        self._token = token
        self._timeout = timeout
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    @property
    def address(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"SyncClient(address={self._address!r})"  # never the token

    def call(
        self, api: str, endpoint: str, request: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``api``'s ``endpoint`` and return its answer (see ``Client.call``)."""
        return self.post(api_path(api, endpoint), request)

    def post(self, path: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a JSON request to any path of the platform (``customers/login``, say)."""
        url = http_url(self._address, path)
        headers = {**auth_headers(self._token), "Content-Type": "application/json"}
        try:
            response = self._http.post(url, content=encode(request), headers=headers)
        except httpx.TimeoutException:
            raise RequestTimeout(f"no answer from {url} within {self._timeout} s") from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot reach {url}: {exc}") from None
        return read_answer(response.status_code, response.content, response.headers)

    def stream(
        self, api: str, endpoint: str, request: Mapping[str, Any] | None = None
    ) -> SyncStream:
        """A streaming call: ``with client.stream(...) as stream: for message in stream``."""
        return SyncStream(
            websocket_url(self._address, api_path(api, endpoint)),
            self._token,
            request,
            open_timeout=self._timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class SyncStream:
    """``Stream`` for code without an event loop: an iterator of messages, ``send``, ``close``."""

    def __init__(
        self,
        url: str,
        token: str,
        request: Mapping[str, Any] | None,
        *,
        open_timeout: float | None,
    ) -> None:
        self._url = url
        self._token = token
        self._first = encode(request)
        self._open_timeout = open_timeout
        self._connection: ClientConnection | None = None
        self._finished = False

    def __repr__(self) -> str:
        return f"SyncStream({self._url!r})"

    def _opened(self) -> ClientConnection:
        if self._connection is not None:
            return self._connection
        if self._finished:
            raise ClientError("the stream is closed")
        try:
            # legacy=True: connect and hand back the connection, which this class owns and
            # closes (the documented way to use it outside a ``with`` block).
            connection = connect(
                self._url, legacy=True, **connect_options(self._token, self._open_timeout)
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._finished = True
            raise open_error(exc, self._url) from None
        self._connection = connection
        try:
            connection.send(self._first.decode())
        except ConnectionClosed as exc:
            self.close()
            raise open_error(exc, self._url) from None
        return connection

    def open(self) -> None:
        """Connect and send the request (done for you by iteration, ``send`` and ``with``)."""
        self._opened()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._finished:
            raise StopIteration
        connection = self._opened()
        try:
            frame = connection.recv()
        except ConnectionClosed as exc:
            self.close()
            error = closed_error(exc)
            if error is None:
                raise StopIteration from None
            raise error from None
        return decode_message(frame)

    def send(self, message: Mapping[str, Any]) -> None:
        """Send one more message on the stream (after the request)."""
        connection = self._opened()
        try:
            connection.send(encode(message).decode())
        except ConnectionClosed as exc:
            self.close()
            raise closed_error(exc) or ClientError("the stream has ended") from None

    def close(self) -> None:
        """Close the websocket (normal close); iteration ends. Safe to call twice."""
        connection, self._connection = self._connection, None
        self._finished = True
        if connection is not None:
            connection.close()

    def __enter__(self) -> SyncStream:
        self._opened()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
