"""Unary calls: what the client sends, what it returns, and the errors it raises."""

from __future__ import annotations

import socket

import pytest

from client.fake_platform import API_KEY, INSUFFICIENT_CREDIT, UNAUTHORIZED, FakePlatform
from m3o.client import (
    APIError,
    BadRequestError,
    Client,
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


async def test_call_posts_the_request_as_json_with_the_key_as_bearer(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        answer = await client.call("helloworld", "call", {"name": "John"})

    assert answer == {"message": "Hello John"}
    [received] = platform.received
    assert received.method == "POST"
    assert received.path == "/v1/helloworld/call"
    assert received.authorization == f"Bearer {API_KEY}"
    assert received.content_type == "application/json"
    assert received.body == {"name": "John"}


async def test_dotted_endpoint_is_sent_as_path_segments(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address) as client:
        answer = await client.call("helloworld", "Helloworld.Call", {"name": "Jane"})

    assert answer == {"message": "Hello Jane"}
    assert platform.received[0].path == "/v1/helloworld/Helloworld/Call"


async def test_address_with_trailing_slash_makes_the_same_path(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address + "/") as client:
        await client.call("helloworld", "call", {"name": "John"})

    assert platform.received[0].path == "/v1/helloworld/call"


async def test_no_request_sends_an_empty_object(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address) as client:
        assert await client.call("empty", "call") == {}

    assert platform.received[0].body == {}


async def test_empty_answer_is_an_empty_object(platform: FakePlatform) -> None:
    async with Client(API_KEY, platform.address) as client:
        assert await client.call("empty", "call", {}) == {}


async def test_wrong_key_raises_unauthorized_with_the_platform_error(
    platform: FakePlatform,
) -> None:
    async with Client("m3o_not-a-key", platform.address) as client:
        with pytest.raises(UnauthorizedError) as raised:
            await client.call("helloworld", "call", {"name": "John"})

    assert raised.value.to_dict() == UNAUTHORIZED
    assert (raised.value.id, raised.value.code, raised.value.detail) == (
        "v1",
        401,
        "Unauthorized",
    )
    assert platform.received[0].authorization == "Bearer m3o_not-a-key"


async def test_no_token_sends_no_authorization_header(platform: FakePlatform) -> None:
    async with Client("", platform.address) as client:
        with pytest.raises(UnauthorizedError):
            await client.call("helloworld", "call", {"name": "John"})

    assert platform.received[0].authorization == ""


async def test_error_carries_id_code_detail_status_and_request_id(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(ForbiddenError) as raised:
            await client.call("errors", "raise", {"status": 403, "error": INSUFFICIENT_CREDIT})

    error = raised.value
    assert error.id == "v1.blocked"
    assert error.code == 403
    assert error.detail == "Request blocked. Insufficient credit"
    assert error.status == "Forbidden"
    assert error.request_id == "req-456"
    assert str(error) == (
        '{"id":"v1.blocked","code":403,"detail":"Request blocked. Insufficient credit",'
        '"status":"Forbidden"}'
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, BadRequestError),
        (404, NotFoundError),
        (500, InternalServerError),
        (503, ServiceUnavailableError),
    ],
)
async def test_error_kind_follows_the_error_code(
    platform: FakePlatform, code: int, kind: type[APIError]
) -> None:
    document = {"id": "helloworld.call", "code": code, "detail": "nope", "status": "x"}
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(kind) as raised:
            await client.call("errors", "raise", {"status": code, "error": document})

    assert raised.value.to_dict() == document


async def test_too_many_requests_carries_retry_after(platform: FakePlatform) -> None:
    document = {"id": "v1", "code": 429, "detail": "Too Many Requests", "status": "Too Many"}
    request = {"status": 429, "error": document, "headers": {"Retry-After": "1"}}
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(TooManyRequestsError) as raised:
            await client.call("errors", "raise", request)

    assert raised.value.retry_after == 1.0
    assert raised.value.detail == "Too Many Requests"


async def test_error_answer_that_is_not_json_becomes_the_error_of_its_status(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(InternalServerError) as raised:
            await client.call("errors", "html")

    assert raised.value.code == 502
    assert raised.value.status == "Bad Gateway"
    assert raised.value.detail == "<html>Bad Gateway</html>"


@pytest.mark.parametrize("endpoint", ["notjson", "list"])
async def test_success_that_is_not_a_json_object_is_invalid(
    platform: FakePlatform, endpoint: str
) -> None:
    async with Client(API_KEY, platform.address) as client:
        with pytest.raises(InvalidResponse):
            await client.call("errors", endpoint)


async def test_no_answer_within_the_timeout_raises_request_timeout(
    platform: FakePlatform,
) -> None:
    async with Client(API_KEY, platform.address, timeout=0.1) as client:
        with pytest.raises(RequestTimeout):
            await client.call("slow", "call", {"seconds": 1})


async def test_unreachable_platform_raises_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Client(API_KEY, f"http://127.0.0.1:{port}", timeout=2) as client:
        with pytest.raises(NetworkError) as raised:
            await client.call("helloworld", "call", {"name": "John"})

    assert not isinstance(raised.value, RequestTimeout)
    assert API_KEY not in str(raised.value)


async def test_post_reaches_any_platform_path(platform: FakePlatform) -> None:
    async with Client("", platform.address) as client:
        with pytest.raises(UnauthorizedError) as raised:
            await client.post("customers/login", {"email": "a@b.c", "password": "wrong"})

    assert raised.value.id == "customers.login"
    assert platform.received[0].path == "/customers/login"


@pytest.mark.parametrize(
    ("api", "endpoint"), [("", "call"), ("hello/world", "call"), ("helloworld", ""), ("a", "b..c")]
)
async def test_bad_names_are_refused_before_sending(api: str, endpoint: str) -> None:
    async with Client(API_KEY) as client:
        with pytest.raises(ValueError, match=r"must be|not an endpoint"):
            await client.call(api, endpoint)


@pytest.mark.parametrize("address", ["127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1"])
def test_address_must_be_an_http_url(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        Client(API_KEY, address)


async def test_repr_never_shows_the_token() -> None:
    async with Client(API_KEY) as client:
        assert API_KEY not in repr(client)
        assert API_KEY not in repr(client.stream("helloworld", "stream"))
