"""The async client of M3O's public API."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from m3o.client._errors import NetworkError, RequestTimeout
from m3o.client._stream import Stream
from m3o.client._wire import (
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    api_path,
    auth_headers,
    check_address,
    encode,
    http_url,
    read_answer,
    websocket_url,
)

__all__ = ["Client"]


class Client:
    """Calls the public API with an API key: ``await client.call("helloworld", "call", {...})``.

    ``token`` is an API key (or a customer token for the key-management paths); empty sends
    no ``Authorization`` header. ``timeout`` is in seconds for each call and for opening a
    stream; ``None`` waits forever. ``transport`` replaces httpx's network transport (tests).
    Use it as ``async with Client(...) as client`` or call ``aclose()``.
    """

    def __init__(
        self,
        token: str = "",
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._address = check_address(address)
        self._token = token
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._streams: set[Stream] = set()

    @property
    def address(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"Client(address={self._address!r})"  # never the token

    async def call(
        self, api: str, endpoint: str, request: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``api``'s ``endpoint`` (``call``, ``Helloworld.Call``) and return its answer.

        Raises the ``APIError`` subclass of the platform's error answer, ``RequestTimeout``
        or ``NetworkError``.
        """
        return await self.post(api_path(api, endpoint), request)

    async def post(self, path: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a JSON request to any path of the platform (``customers/login``, say)."""
        url = http_url(self._address, path)
        headers = {**auth_headers(self._token), "Content-Type": "application/json"}
        try:
            response = await self._http.post(url, content=encode(request), headers=headers)
        except httpx.TimeoutException:
            raise RequestTimeout(f"no answer from {url} within {self._timeout} s") from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot reach {url}: {exc}") from None
        return read_answer(response.status_code, response.content, response.headers)

    def stream(self, api: str, endpoint: str, request: Mapping[str, Any] | None = None) -> Stream:
        """A streaming call: ``async for message in client.stream(...)`` (see ``Stream``)."""
        stream = Stream(
            websocket_url(self._address, api_path(api, endpoint)),
            self._token,
            request,
            open_timeout=self._timeout,
            on_close=self._streams.discard,
        )
        self._streams.add(stream)
        return stream

    async def aclose(self) -> None:
        """Close the streams still open, then the HTTP connections."""
        for stream in list(self._streams):
            await stream.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
