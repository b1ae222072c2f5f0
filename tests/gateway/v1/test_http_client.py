"""The HTTP forwarder's own client, against upstreams whose answers are written byte for byte."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from m3o.gateway.v1.http_client import AnswerTooLarge, HttpClient, UnusableUrl
from support.certificates import Certificate, self_signed
from support.ports import closed_port

DEADLINE = 10.0


@dataclass
class Received:
    line: str
    headers: dict[str, str]
    body: bytes


def ok(body: bytes = b'{"ok": true}', *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


Reply = tuple[bytes, bool]
"""What an upstream writes for a request, and whether it closes the connection after."""


@dataclass
class RawUpstream:
    """An HTTP/1.1 server on 127.0.0.1; ``reply`` decides each answer's bytes (an empty
    answer: none, the connection stays open and silent)."""

    reply: Callable[[Received], Reply]
    tls: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    received: list[Received] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/Weather/Call"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for header in filter(None, lines):
                    name, _, value = header.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(line, headers, body)
                self.received.append(received)
                answer, close = self.reply(received)
                writer.write(answer)
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()
            self.closed.set()


@asynccontextmanager
async def upstream(
    reply: Callable[[Received], Reply], *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawUpstream]:
    found = RawUpstream(reply, tls)
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0, ssl=tls)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()


@asynccontextmanager
async def client(**options: object) -> AsyncIterator[HttpClient]:
    made = HttpClient(**options)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        await made.close()


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.005)


async def test_posts_the_body_with_host_length_and_headers_and_keeps_the_connection() -> None:
    async with upstream(lambda r: (ok(), False)) as server, client() as http:
        for _ in range(3):
            answer = await http.post(server.url, b'{"name": "x"}', {"x-request-id": "r1"}, 5)
            assert (answer.status, answer.body) == (200, b'{"ok": true}')
    first = server.received[0]
    assert first.line == "POST /Weather/Call HTTP/1.1"
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["content-length"] == "13"
    assert first.headers["x-request-id"] == "r1"
    assert first.body == b'{"name": "x"}'
    assert "accept-encoding" not in first.headers
    assert server.connections == 1


async def test_any_status_is_an_answer_and_a_redirect_is_not_followed() -> None:
    answers = {
        b"a": b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
        b"b": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
    }
    async with upstream(lambda r: (answers[r.body], False)) as server, client() as http:
        moved = await http.post(server.url, b"a", {}, 5)
        busy = await http.post(server.url, b"b", {}, 5)
    assert (moved.status, moved.body) == (302, b"")
    assert (busy.status, busy.body) == (503, b"busy")
    assert len(server.received) == 2


async def test_a_chunked_answer_is_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    async with upstream(lambda r: (chunked, False)) as server, client() as http:
        assert (await http.post(server.url, b"", {}, 5)).body == b"hello world"
        assert (await http.post(server.url, b"", {}, 5)).body == b"hello world"
    assert server.connections == 1


async def test_an_answer_that_runs_to_the_close_is_read_and_the_connection_not_kept() -> None:
    to_close = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"until": "close"}'
    async with upstream(lambda r: (to_close, True)) as server, client() as http:
        for _ in range(2):
            assert (await http.post(server.url, b"", {}, 5)).body == b'{"until": "close"}'
    assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    closing = ok(extra=b"Connection: close\r\n")
    async with upstream(lambda r: (closing, False)) as server, client() as http:
        await http.post(server.url, b"", {}, 5)
        await http.post(server.url, b"", {}, 5)
    assert server.connections == 2


async def test_an_idle_connection_the_upstream_closed_is_replaced() -> None:
    async with upstream(lambda r: (ok(), True)) as server, client() as http:
        await http.post(server.url, b"", {}, 5)  # kept: nothing said it would close
        await server.closed.wait()
        await eventually(lambda: http.idle_connections() == 0)
        answer = await http.post(server.url, b"", {}, 5)
    assert answer.status == 200
    assert server.connections == 2


async def test_an_interim_answer_is_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final")
    async with upstream(lambda r: (interim, False)) as server, client() as http:
        answer = await http.post(server.url, b"", {}, 5)
    assert (answer.status, answer.body) == (200, b"final")


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        # mtime=0: the same bytes in every process, which pytest-xdist's workers need
        # (each collects the tests and the lists must match).
        (b"gzip", gzip.compress(b"unpacked", mtime=0)),
        (b"deflate", zlib.compress(b"unpacked")),
        (b"deflate", zlib.compress(b"unpacked")[2:-4]),  # raw deflate, no zlib wrapper
    ],
    ids=["gzip", "zlib", "raw-deflate"],
)
async def test_a_compressed_answer_is_unpacked(encoding: bytes, packed: bytes) -> None:
    answer = ok(packed, extra=b"Content-Encoding: " + encoding + b"\r\n")
    async with upstream(lambda r: (answer, False)) as server, client() as http:
        assert (await http.post(server.url, b"", {}, 5)).body == b"unpacked"


async def test_an_answer_longer_than_the_limit_fails_and_its_connection_is_dropped() -> None:
    bodies = iter([b"x" * 101, b"y" * 100])
    async with (
        upstream(lambda r: (ok(next(bodies)), False)) as server,
        client(max_answer_bytes=100) as http,
    ):
        with pytest.raises(AnswerTooLarge):
            await http.post(server.url, b"", {}, 5)
        assert (await http.post(server.url, b"", {}, 5)).body == b"y" * 100
    assert server.connections == 2


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_compressed_answer_unpacking_past_the_limit_fails(encoding: bytes) -> None:
    unpacked = b"0" * 10_000
    packed = gzip.compress(unpacked) if encoding == b"gzip" else zlib.compress(unpacked)
    answer = ok(packed, extra=b"Content-Encoding: " + encoding + b"\r\n")
    async with upstream(lambda r: (answer, False)) as server:
        async with client(max_answer_bytes=9_999) as http:
            with pytest.raises(AnswerTooLarge, match="unpacked"):
                await http.post(server.url, b"", {}, 5)
        async with client(max_answer_bytes=10_000) as http:
            assert (await http.post(server.url, b"", {}, 5)).body == unpacked


async def test_an_answer_in_an_unknown_encoding_fails_and_is_not_passed_on() -> None:
    answer = ok(b"????", extra=b"Content-Encoding: br\r\n")
    async with upstream(lambda r: (answer, False)) as server, client() as http:
        with pytest.raises(ConnectionError, match="br"):
            await http.post(server.url, b"", {}, 5)


async def test_a_silent_upstream_times_out_and_its_connection_is_dropped() -> None:
    replies = iter([(b"", False), (ok(), False)])
    async with upstream(lambda r: next(replies)) as server, client() as http:
        with pytest.raises(TimeoutError):
            await http.post(server.url, b"", {}, 0.2)
        answer = await http.post(server.url, b"", {}, 5)
    assert answer.status == 200
    assert server.connections == 2  # the late answer could not be taken for the next call's


async def test_a_cancelled_call_drops_its_connection() -> None:
    replies = iter([(b"", False), (ok(), False)])
    async with upstream(lambda r: next(replies)) as server, client() as http:
        call = asyncio.create_task(http.post(server.url, b"", {}, None))
        await eventually(lambda: len(server.received) == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await http.post(server.url, b"", {}, 5)).status == 200
    assert server.connections == 2


async def test_an_answer_cut_short_is_a_connection_error() -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial'
    async with upstream(lambda r: (cut, True)) as server, client() as http:
        with pytest.raises(ConnectionError, match="before the answer ended"):
            await http.post(server.url, b"", {}, 5)


async def test_an_unreadable_answer_is_a_connection_error() -> None:
    async with upstream(lambda r: (b"SPAM SPAM SPAM\r\n\r\n", False)) as server, client() as http:
        with pytest.raises(ConnectionError, match="unreadable"):
            await http.post(server.url, b"", {}, 5)


async def test_nothing_listening_is_a_connection_error() -> None:
    async with client() as http:
        with pytest.raises(ConnectionError):
            await http.post(f"http://127.0.0.1:{closed_port()}/Weather/Call", b"", {}, 5)


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    async with upstream(lambda r: (ok(), False)) as server, client() as http:
        for headers in ({"x-a": "1\r\nx-injected: 1"}, {"x-a\nb": "1"}, {"x:a": "1"}):
            with pytest.raises(ValueError, match="HTTP does not allow"):
                await http.post(server.url, b"", headers, 5)
    assert server.connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "http://user:secret@127.0.0.1/x", "http:///no-host", "x"]
)
async def test_a_url_it_cannot_call_is_refused(url: str) -> None:
    async with client() as http:
        with pytest.raises(UnusableUrl):
            await http.post(url, b"", {}, 5)


async def test_calls_beyond_max_connections_wait_for_a_free_one() -> None:
    bodies = [str(n).encode() for n in range(20)]
    async with upstream(lambda r: (ok(r.body), False)) as server, client(max_connections=2) as http:
        answers = await asyncio.gather(*(http.post(server.url, b, {}, 5) for b in bodies))
    assert [a.body for a in answers] == bodies
    assert server.connections <= 2


async def test_waiting_for_a_free_connection_counts_in_the_timeout() -> None:
    replies = iter([(b"", False), (ok(), False)])
    async with upstream(lambda r: next(replies)) as server, client(max_connections=1) as http:
        stuck = asyncio.create_task(http.post(server.url, b"", {}, None))
        await eventually(lambda: len(server.received) == 1)
        with pytest.raises(TimeoutError):
            await http.post(server.url, b"", {}, 0.2)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert (await http.post(server.url, b"", {}, 5)).status == 200  # the slot came back
    assert server.connections == 2


async def test_idle_connections_beyond_the_limit_are_closed() -> None:
    async with upstream(lambda r: (ok(), False)) as server, client(max_idle_per_origin=1) as http:
        await asyncio.gather(*(http.post(server.url, b"", {}, 5) for _ in range(4)))
        assert http.idle_connections() == 1


async def test_a_closed_client_refuses_calls() -> None:
    async with upstream(lambda r: (ok(), False)) as server:
        http = HttpClient()
        await http.post(server.url, b"", {}, 5)
        await http.close()
        assert http.idle_connections() == 0
        await server.closed.wait()  # its idle connection was closed
        with pytest.raises(ConnectionError, match="closed"):
            await http.post(server.url, b"", {}, 5)


@pytest.mark.parametrize(
    ("max_connections", "max_idle", "max_answer"), [(0, 1, 1), (1, -1, 1), (1, 1, -1)]
)
def test_limits_are_checked(max_connections: int, max_idle: int, max_answer: int) -> None:
    with pytest.raises(ValueError, match="max_"):
        HttpClient(
            max_connections=max_connections,
            max_idle_per_origin=max_idle,
            max_answer_bytes=max_answer,
        )


# --- https ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


async def test_https_upstream_with_a_trusted_certificate(certificate: Certificate) -> None:
    async with (
        upstream(lambda r: (ok(b"secret"), False), tls=certificate.server) as server,
        client(tls=certificate.client) as http,
    ):
        assert (await http.post(server.url, b"", {}, 5)).body == b"secret"
        assert (await http.post(server.url, b"", {}, 5)).body == b"secret"
    assert server.connections == 1


async def test_https_upstream_with_an_untrusted_certificate_is_refused(
    certificate: Certificate,
) -> None:
    async with (
        upstream(lambda r: (ok(b"secret"), False), tls=certificate.server) as server,
        client() as http,
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            await http.post(server.url, b"", {}, 5)
    assert server.received == []
