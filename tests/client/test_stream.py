"""Streams over a websocket: the handshake, the first frame, each message, error closes."""

from __future__ import annotations

import asyncio

import pytest

from client.fake_platform import (
    API_KEY,
    INSUFFICIENT_CREDIT,
    NO_SUCH_API,
    UNAUTHORIZED,
    FakePlatform,
)
from m3o.client import (
    APIError,
    BadRequestError,
    Client,
    ClientError,
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


async def test_stream_sends_the_request_first_and_yields_every_message(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        messages = [m async for m in client.stream("streams", "subscribe", {"count": 3})]

    assert messages == [{"count": 0}, {"count": 1}, {"count": 2}]
    [session] = platform.streams
    assert session.path == "/v1/streams/subscribe"
    assert session.authorization == f"Bearer {API_KEY}"
    assert session.frames == [{"count": 3}]


async def test_stream_of_no_messages_ends_at_once(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address) as client:
        messages = [m async for m in client.stream("streams", "subscribe", {"count": 0})]

    assert messages == []


async def test_error_close_raises_the_error_of_its_reason_after_the_messages(
    platform: FakePlatform,
) -> None:
    received = []
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(ForbiddenError) as raised:
            async for message in client.stream("streams", "fail", {}):
                received.append(message)

    assert received == [{"count": 0}]
    assert raised.value.to_dict() == INSUFFICIENT_CREDIT


@pytest.mark.parametrize(
    ("code", "reason", "kind", "detail"),
    [
        (4429, "slow down", TooManyRequestsError, "slow down"),
        (4400, "", BadRequestError, "Bad Request"),
        (1011, "boom", InternalServerError, "boom"),
        (1008, "", ForbiddenError, "Forbidden"),
        (1013, "", ServiceUnavailableError, "Service Unavailable"),
        (3000, "odd", InternalServerError, "odd"),
    ],
)
async def test_close_code_without_error_json_decides_the_kind(
    platform: FakePlatform, code: int, reason: str, kind: type[APIError], detail: str
) -> None:
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(kind) as raised:
            async for _ in client.stream("streams", "close", {"code": code, "reason": reason}):
                pass

    assert type(raised.value) is kind
    assert raised.value.detail == detail


async def test_refused_handshake_raises_the_error_of_its_answer(platform: FakePlatform) -> None:
    async with Client("m3o_wrong", platform.address) as client:
        with pytest.raises(UnauthorizedError) as raised:
            async for _ in client.stream("streams", "subscribe", {"count": 1}):
                pass

    assert raised.value.to_dict() == UNAUTHORIZED
    assert platform.streams == []


async def test_bidirectional_stream_sends_each_message_and_reads_the_answers(
    platform: FakePlatform,
) -> None:
    async with (
        Client(API_KEY, platform.address) as client,
        client.stream("streams", "echo", {"start": True}) as stream,
    ):
        await stream.send({"n": 1})
        first = await anext(stream)
        await stream.send({"n": 2})
        second = await anext(stream)
        await stream.send({"end": True})
        rest = [m async for m in stream]

    assert (first, second, rest) == ({"echo": {"n": 1}}, {"echo": {"n": 2}}, [])
    assert platform.streams[0].frames == [{"start": True}, {"n": 1}, {"n": 2}, {"end": True}]


async def test_binary_frames_holding_json_are_messages_and_others_invalid(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        stream = client.stream("streams", "binary", {})
        assert await anext(stream) == {"binary": True}
        with pytest.raises(InvalidResponse):
            await anext(stream)
        await stream.aclose()


async def test_leaving_the_block_closes_the_websocket_normally(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address) as client:
        async with client.stream("streams", "echo", {}) as stream:
            await stream.send({"n": 1})
            assert await anext(stream) == {"echo": {"n": 1}}

        assert [m async for m in stream] == []

    session = platform.streams[0]
    assert await asyncio.to_thread(session.ended.wait, 5)
    assert session.client_close_code == 1000


async def test_closing_the_client_closes_its_open_streams(platform: FakePlatform) -> None:
    client = Client(API_KEY, platform.address)
    stream = client.stream("streams", "echo", {})
    await stream.open()
    await client.aclose()

    session = platform.streams[0]
    assert await asyncio.to_thread(session.ended.wait, 5)
    assert session.client_close_code == 1000
    with pytest.raises(ClientError, match="closed"):
        await stream.send({"n": 1})


async def test_streams_ended_by_the_server_are_forgotten_by_the_client(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        for _ in range(3):
            [m async for m in client.stream("streams", "subscribe", {"count": 1})]

        assert client._streams == set()


async def test_send_after_the_server_ended_the_stream_is_an_error(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        stream = client.stream("streams", "subscribe", {"count": 0})
        assert [m async for m in stream] == []
        with pytest.raises(ClientError):
            await stream.send({"more": True})


async def test_unreachable_platform_raises_network_error_when_streaming() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with Client(API_KEY, f"http://127.0.0.1:{port}") as client:
        with pytest.raises(NetworkError):
            await client.stream("streams", "subscribe", {}).open()


async def test_silent_server_raises_request_timeout_on_the_handshake() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept the connection and never answer

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(API_KEY, f"http://127.0.0.1:{port}", timeout=0.2) as client:
            with pytest.raises(RequestTimeout):
                await client.stream("streams", "subscribe", {}).open()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_unknown_route_close_reason_json_wins_over_the_close_code(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(NotFoundError) as raised:
            await anext(client.stream("nowhere", "call", {}))

    assert raised.value.to_dict() == NO_SUCH_API
