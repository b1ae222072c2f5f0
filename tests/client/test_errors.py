"""How error answers and websocket closes become typed errors, without a network."""

from __future__ import annotations

import pytest

from m3o.client import (
    APIError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InternalServerError,
    NetworkError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from m3o.client._errors import error_from_close, error_from_response
from m3o.client._wire import api_path, websocket_url


def test_error_json_code_decides_the_kind_over_the_http_status() -> None:
    body = b'{"id":"customers.create","code":409,"detail":"exists","status":"Conflict"}'
    error = error_from_response(400, body, {"x-request-id": "r1"})

    assert type(error) is ConflictError
    assert error.to_dict() == {
        "id": "customers.create",
        "code": 409,
        "detail": "exists",
        "status": "Conflict",
    }
    assert error.request_id == "r1"


def test_unknown_code_is_a_plain_api_error_and_other_5xx_internal() -> None:
    teapot = error_from_response(418, b'{"id":"x","code":418,"detail":"tea"}')
    gateway = error_from_response(504, b"upstream timed out")

    assert type(teapot) is APIError
    assert teapot.status == "I'm a Teapot"
    assert type(gateway) is InternalServerError
    assert (gateway.code, gateway.detail, gateway.id) == (504, "upstream timed out", "")


def test_empty_error_body_uses_the_reason_phrase() -> None:
    error = error_from_response(503, b"")

    assert type(error) is ServiceUnavailableError
    assert error.detail == "Service Unavailable"


def test_long_error_body_is_cut() -> None:
    error = error_from_response(500, b"x" * 5000)

    assert len(error.detail) == 500


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("soon", None), ("", None)])
def test_retry_after_is_seconds_or_none(header: str, expected: float | None) -> None:
    body = b'{"id":"v1","code":429,"detail":"Too Many Requests","status":"Too Many Requests"}'
    error = error_from_response(429, body, {"retry-after": header} if header else {})

    assert isinstance(error, TooManyRequestsError)
    assert error.retry_after == expected


def test_normal_close_is_no_error() -> None:
    assert error_from_close(1000, "") is None


def test_close_without_a_close_frame_is_a_network_error() -> None:
    assert isinstance(error_from_close(None, ""), NetworkError)
    assert isinstance(error_from_close(1006, ""), NetworkError)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1001, ServiceUnavailableError),
        (1003, BadRequestError),
        (1008, ForbiddenError),
        (1009, BadRequestError),
        (1011, InternalServerError),
        (4403, ForbiddenError),
        (4429, TooManyRequestsError),
        (4999, InternalServerError),
    ],
)
def test_close_code_maps_to_the_nearest_kind(code: int, kind: type[APIError]) -> None:
    error = error_from_close(code, "why")

    assert type(error) is kind
    assert isinstance(error, APIError)
    assert error.detail == "why"


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("call", "v1/helloworld/call"),
        ("Helloworld.Call", "v1/helloworld/Helloworld/Call"),
        ("keys/generate", "v1/helloworld/keys/generate"),
        ("a b", "v1/helloworld/a%20b"),
    ],
)
def test_api_path(endpoint: str, path: str) -> None:
    assert api_path("helloworld", endpoint) == path


def test_websocket_url_swaps_the_scheme_and_keeps_a_path_prefix() -> None:
    assert websocket_url("http://h:1", "v1/a/b") == "ws://h:1/v1/a/b"
    assert websocket_url("https://h/m3o", "v1/a/b") == "wss://h/m3o/v1/a/b"
