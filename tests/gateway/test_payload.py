"""Reading a JSON request: depth and NUL are judged on the text, exactly for valid JSON."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from m3o.gateway.payload import (
    HAS_NUL,
    MAX_DEPTH,
    TOO_DEEP,
    UnsupportedMediaType,
    check_content_type,
    parse_object,
)
from m3o.runtime.errors import BadRequest


def _arrays(depth: int) -> bytes:
    """An object whose field holds arrays nested so the whole is ``depth`` levels deep."""
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def _objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize("build", [_arrays, _objects])
def test_depth_up_to_the_limit_is_read_and_one_more_is_refused(
    build: Callable[[int], bytes],
) -> None:
    assert parse_object(build(MAX_DEPTH), "x")
    with pytest.raises(BadRequest) as refused:
        parse_object(build(MAX_DEPTH + 1), "x")
    assert refused.value == BadRequest("x", TOO_DEEP)


def test_depth_is_the_deepest_branch_not_the_number_of_brackets() -> None:
    wide = b'{"a":[' + b"[[]]," * 10_000 + b"[]]}"
    assert len(parse_object(wide, "x")["a"]) == 10_001
    mixed = b'{"a":[{"b":[' + b"[]," * 100 + b'{"c":' + _arrays(MAX_DEPTH - 3) + b"}]}]}"
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_object(mixed, "x")


def test_brackets_and_escaped_quotes_inside_strings_are_text() -> None:
    text = '"[{\\"' + "[" * 200 + '\\\\"'
    body = f'{{"a": {text}, "b": ["}}]]]"]}}'.encode()
    assert parse_object(body, "x") == {"a": '[{"' + "[" * 200 + "\\", "b": ["}]]]"]}


def test_invalid_json_deeper_than_the_parser_allows_is_too_deep() -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_object(b'{"a":' + b"[" * 5000, "x")
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_object(b'{"a": [[1, 2]]', "x")


@pytest.mark.parametrize(
    ("body", "has_nul"),
    [
        (b'{"a": "\\u0000"}', True),
        (b'{"\\u0000": 1}', True),
        (b'{"a": ["x", {"b": "y\\u0000z"}]}', True),
        (b'{"a": "\\\\\\u0000"}', True),  # an escaped backslash, then NUL
        (b'{"a": "\\\\u0000"}', False),  # an escaped backslash, then the text u0000
        (b'{"a": "u0000"}', False),
        (b'{"a": "\\u0001"}', False),
    ],
)
def test_nul_is_found_in_any_key_or_string(body: bytes, has_nul: bool) -> None:
    if has_nul:
        with pytest.raises(BadRequest) as refused:
            parse_object(body, "x")
        assert refused.value == BadRequest("x", HAS_NUL)
    else:
        assert "\x00" not in str(parse_object(body, "x"))


def test_text_frames_name_the_message_in_their_errors() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_object("{", "x", "Request message")
    assert refused.value == BadRequest("x", "Request message is not valid JSON")
    assert parse_object("  ", "x", "Request message") == {}


@pytest.mark.parametrize(
    ("content_type", "body", "accepted"),
    [
        ("application/json", b"{}", True),
        ("application/problem+json; charset=UTF-8", b"{}", True),
        ("application/json; charset=utf-16", b"{}", False),
        ("text/json", b"{}", False),
        (None, b"{}", False),
        (None, b"  ", True),
        ("text/plain", b"", True),
    ],
)
def test_content_type_is_checked_only_for_a_body(
    content_type: str | None, body: bytes, accepted: bool
) -> None:
    if accepted:
        check_content_type(content_type, body, "x")
    else:
        with pytest.raises(UnsupportedMediaType) as refused:
            check_content_type(content_type, body, "x")
        assert refused.value.to_dict() == {
            "id": "x",
            "code": 415,
            "detail": "Content-Type must be application/json",
            "status": "Unsupported Media Type",
        }
