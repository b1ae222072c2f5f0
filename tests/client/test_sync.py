"""SyncClient and SyncStream: the same contract without an event loop."""

from __future__ import annotations

import pytest

from client.fake_platform import (
    API_KEY,
    INSUFFICIENT_CREDIT,
    UNAUTHORIZED,
    FakePlatform,
)
from m3o.client import (
    ClientError,
    ForbiddenError,
    NotFoundError,
    RequestTimeout,
    SyncClient,
    UnauthorizedError,
)


def test_call_posts_the_request_with_the_key_and_returns_the_answer(
    platform: FakePlatform,
) -> None:
    with SyncClient(API_KEY, platform.address) as client:
        answer = client.call("helloworld", "Helloworld.Call", {"name": "John"})

    assert answer == {"message": "Hello John"}
    [received] = platform.received
    assert (received.path, received.authorization, received.body) == (
        "/v1/helloworld/Helloworld/Call",
        f"Bearer {API_KEY}",
        {"name": "John"},
    )


def test_call_error_is_the_typed_error_of_the_answer(platform: FakePlatform) -> None:
    document = {"id": "helloworld.call", "code": 404, "detail": "No such name", "status": "x"}
    with SyncClient(API_KEY, platform.address) as client, pytest.raises(NotFoundError) as raised:
        client.call("errors", "raise", {"status": 404, "error": document})

    assert raised.value.to_dict() == document
    assert raised.value.request_id == "req-456"


def test_call_timeout_raises_request_timeout(platform: FakePlatform) -> None:
    with (
        SyncClient(API_KEY, platform.address, timeout=0.1) as client,
        pytest.raises(RequestTimeout),
    ):
        client.call("slow", "call", {"seconds": 1})


def test_stream_yields_every_message_then_ends(platform: FakePlatform) -> None:
    with (
        SyncClient(API_KEY, platform.address) as client,
        client.stream("streams", "subscribe", {"count": 2}) as stream,
    ):
        messages = list(stream)

    assert messages == [{"count": 0}, {"count": 1}]
    [session] = platform.streams
    assert (session.authorization, session.frames) == (f"Bearer {API_KEY}", [{"count": 2}])


def test_stream_error_close_raises_after_the_messages(platform: FakePlatform) -> None:
    received = []
    with SyncClient(API_KEY, platform.address) as client, pytest.raises(ForbiddenError) as raised:
        for message in client.stream("streams", "fail", {}):
            received.append(message)

    assert received == [{"count": 0}]
    assert raised.value.to_dict() == INSUFFICIENT_CREDIT


def test_stream_refused_handshake_raises_unauthorized(platform: FakePlatform) -> None:
    with (
        SyncClient("m3o_wrong", platform.address) as client,
        pytest.raises(UnauthorizedError) as raised,
    ):
        client.stream("streams", "subscribe", {"count": 1}).open()

    assert raised.value.to_dict() == UNAUTHORIZED


def test_bidirectional_stream_and_close(platform: FakePlatform) -> None:
    with SyncClient(API_KEY, platform.address) as client:
        stream = client.stream("streams", "echo", {})
        stream.send({"n": 1})
        assert next(stream) == {"echo": {"n": 1}}
        stream.close()
        assert list(stream) == []
        with pytest.raises(ClientError, match="closed"):
            stream.send({"n": 2})

    session = platform.streams[0]
    assert session.ended.wait(5)
    assert session.frames == [{}, {"n": 1}]
    assert session.client_close_code == 1000
