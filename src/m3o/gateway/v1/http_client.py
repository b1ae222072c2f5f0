"""The HTTP forwarder's client: HTTP/1.1 POSTs over kept-alive connections, pooled per origin.

Forwarding is the gateway's hot path, and a general client's per-call work (a request and
a response object, header multidicts, payload registries, timers, stream readers) was the
largest part of a forwarded call (``benchmarks/gateway.py``, README "Performance").
This client does only what forwarding needs: it writes one request in one buffer, reads the
answer with httptools (the parser uvicorn serves with), and keeps the connection for the
next call.

- One call at a time per connection (no pipelining). An idle connection the upstream closed
  leaves the pool when asyncio reports it lost; a call is never sent twice, so a POST that
  meets a connection closed under it fails as unreachable (as a general client does for
  requests that are not idempotent).
- At most ``max_connections`` are open at once: further calls wait for one to be free,
  within their timeout.
- ``https`` origins use the system's trust store and check the host name.
- ``gzip`` and ``deflate`` answers are decompressed (none is asked for); an answer in
  another encoding is refused, and so is one longer than ``max_answer_bytes``
  (:data:`MAX_ANSWER_BYTES`, 64 MiB, by default).
- No cookies, no redirects (a 3xx is an answer like any other), no proxy from the
  environment, no user information in URLs.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["MAX_ANSWER_BYTES", "AnswerTooLarge", "HttpAnswer", "HttpClient", "UnusableUrl"]

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The largest answer body a call takes by default (as received, before unpacking):
an upstream must not make the gateway hold any amount it likes in memory."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class AnswerTooLarge(ConnectionError):
    """The answer's body is longer than the client takes; the connection is dropped."""


class UnusableUrl(ValueError):
    """A URL this client cannot call (not ``http``/``https``, no host, user information)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: bytes


@lru_cache(maxsize=4096)
def _parse(url: str) -> tuple[_Origin, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnusableUrl(f"not an http(s) URL: {url}")
    if parts.username is not None or parts.password is not None:
        raise UnusableUrl("user information in an upstream URL is not supported")
    host = parts.hostname
    if not host:
        raise UnusableUrl(f"no host in {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    origin = _Origin(parts.scheme, host, port, parts.netloc.encode("idna"))
    return origin, path.encode("ascii")


class _Closed(Exception):
    """The connection ended before the answer did."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: one request, its answer, then the next request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_answer_bytes: int) -> None:
        self._loop = loop
        self._max_answer_bytes = max_answer_bytes
        self._received = 0
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._body: list[bytes] = []
        self._encoding = b""
        self._headers_done = False
        self._length_known = False
        self.reusable = False
        self.lost = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Closed(f"unreadable answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._headers_done and self._ends_at_close():
            self._finish()  # an answer whose body runs to the end of the connection
        else:
            self._fail(_Closed("connection closed before the answer ended"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-encoding":
            self._encoding = value.strip().lower()
        elif lowered in _LENGTH_HEADERS:
            self._length_known = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._received += len(body)
        if self._received > self._max_answer_bytes:
            self._fail(AnswerTooLarge(f"answer longer than {self._max_answer_bytes} bytes"))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:  # an interim answer: the real one follows
            self._reset()
            return
        answer = self._answer
        if answer is None or answer.done():  # failed or given up on: never used again
            return
        self.reusable = self._parser.should_keep_alive()
        self._finish()

    # calls

    def send(self, request: bytes) -> asyncio.Future[HttpAnswer]:
        """Write ``request``; the future of its answer."""
        assert self._transport is not None
        self._answer = answer = self._loop.create_future()
        self._reset()
        self._transport.write(request)
        return answer

    def _reset(self) -> None:
        self._body = []
        self._received = 0
        self._encoding = b""
        self._headers_done = False
        self._length_known = False
        self.reusable = False

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def _ends_at_close(self) -> bool:
        return not self._length_known

    def _finish(self) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        if self._encoding and self._encoding != b"identity":
            try:
                body = _decompress(self._encoding, body, self._max_answer_bytes)
            except AnswerTooLarge as exc:
                self._fail(exc)
                return
            except (ValueError, zlib.error) as exc:
                self._fail(_Closed(str(exc)))
                return
        answer.set_result(HttpAnswer(self._parser.get_status_code(), body))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)


def _decompress(encoding: bytes, body: bytes, limit: int) -> bytes:
    """``body`` unpacked, at most ``limit`` bytes of it (:class:`AnswerTooLarge` else)."""
    if encoding in (b"gzip", b"x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, limit)
    if encoding == b"deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, limit)
        except zlib.error:  # some servers send raw deflate, without the zlib wrapper
            return _inflate(body, -zlib.MAX_WBITS, limit)
    raise ValueError(f"answer in an unsupported content encoding: {encoding.decode('latin-1')}")


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflating = zlib.decompressobj(wbits)
    unpacked = inflating.decompress(body, limit + 1)
    if len(unpacked) <= limit:
        unpacked += inflating.flush()
    if len(unpacked) > limit:
        raise AnswerTooLarge(f"answer longer than {limit} bytes once unpacked")
    return unpacked


def _request(origin: _Origin, path: bytes, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [
        b"POST ",
        path,
        b" HTTP/1.1\r\nHost: ",
        origin.host_header,
        b"\r\nContent-Length: ",
        b"%d" % len(body),
        b"\r\n",
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name!r} holds a character HTTP does not allow")
        lines += (_header_name(name), value.encode(), b"\r\n")
    lines += (b"\r\n", body)
    return b"".join(lines)


@lru_cache(maxsize=1024)
def _header_name(name: str) -> bytes:
    """``name: `` as sent, once its name is checked to be an HTTP token."""
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"header {name!r} holds a character HTTP does not allow")
    return f"{name}: ".encode()


class HttpClient:
    """POSTs to any number of origins; made and closed on one event loop."""

    def __init__(
        self,
        *,
        max_connections: int = 512,
        max_idle_per_origin: int = 128,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls`` checks ``https`` upstreams; by default the system's trust store does."""
        if max_connections < 1 or max_idle_per_origin < 0 or max_answer_bytes < 0:
            raise ValueError(
                "max_connections must be positive, max_idle_per_origin and max_answer_bytes"
                " not negative"
            )
        self._max_answer_bytes = max_answer_bytes
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle_per_origin
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self._tls = tls
        self._closed = False

    def idle_connections(self) -> int:
        """Connections kept for the next calls and not known to be closed."""
        return sum(not c.lost for idle in self._idle.values() for c in idle)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float | None
    ) -> HttpAnswer:
        """POST ``body`` with ``headers`` (``Host`` and ``Content-Length`` are added) to
        ``url``; the answer, whatever its status.

        Raises :class:`TimeoutError` when ``timeout`` seconds pass first (connecting
        included), :class:`ConnectionError` (an ``OSError``) when the upstream cannot be
        reached or ends the connection before its answer, :class:`AnswerTooLarge` (one of
        them) for an answer longer than ``max_answer_bytes``, and :class:`UnusableUrl`.
        """
        if self._closed:
            raise ConnectionError("the HTTP client is closed")
        origin, path = _parse(url)
        request = _request(origin, path, headers, body)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if self._slots.locked():
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            connection = self._idle_connection(origin)
            if connection is None:
                connection = await self._connect(loop, origin, deadline)
            answer = connection.send(request)
            timer = None
            if deadline is not None:
                timer = loop.call_at(deadline, _expire, answer)
            try:
                return await answer
            except _Closed as exc:
                raise ConnectionResetError(str(exc)) from None
            finally:
                if timer is not None:
                    timer.cancel()
                self._put_back(origin, connection)
        finally:
            self._slots.release()

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.lost:
                return connection
        return None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: _Origin, deadline: float | None
    ) -> _Connection:
        tls = None
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        async with asyncio.timeout_at(deadline):
            _, connection = await loop.create_connection(
                lambda: _Connection(loop, self._max_answer_bytes),
                origin.host,
                origin.port,
                ssl=tls,
                server_hostname=origin.host if tls is not None else None,
            )
        return connection

    def _put_back(self, origin: _Origin, connection: _Connection) -> None:
        if not connection.reusable or self._closed:
            connection.close()
            return
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self._max_idle:
            connection.close()
            return
        idle.append(connection)

    async def close(self) -> None:
        """Close every idle connection; calls under way end with theirs."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _expire(answer: asyncio.Future[HttpAnswer]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
