"""Routing of /v1 paths: API lower-cased, endpoint Title(handler).Title(method)."""

from __future__ import annotations

import pytest

from m3o.gateway.v1.paths import CallPath, parse_path, raw_call_path
from m3o.runtime.errors import NotFound


@pytest.mark.parametrize(
    ("path", "api", "endpoint"),
    [
        ("helloworld/call", "helloworld", "Helloworld.Call"),
        ("helloworld/Call", "helloworld", "Helloworld.Call"),
        ("Helloworld/call", "helloworld", "Helloworld.Call"),
        ("HELLOWORLD/call", "helloworld", "HELLOWORLD.Call"),
        ("email/sendEmail", "email", "Email.SendEmail"),
        ("a-b/c", "a-b", "A-B.C"),
        ("a_b/c_d", "a_b", "A_b.C_d"),
        ("hello/world/call", "hello", "World.Call"),
        ("hello/world/call/ignored/too", "hello", "World.Call"),
        ("helloworld/call/", "helloworld", "Helloworld.Call"),
    ],
)
def test_api_is_lower_cased_and_endpoint_is_titled(path: str, api: str, endpoint: str) -> None:
    parsed = parse_path(path)
    assert (parsed.api, parsed.endpoint) == (api, endpoint)


def test_title_is_not_str_title() -> None:
    # str.title would give "Sendemail" and "A_B".
    assert parse_path("x/sendEmail").endpoint == "X.SendEmail"
    assert parse_path("x/a_b").endpoint == "X.A_b"


def test_two_parts_are_short_three_are_not() -> None:
    assert parse_path("a/b") == CallPath("a", "A.B", "a", "b", short=True)
    assert parse_path("a/b/c") == CallPath("a", "B.C", "b", "c", short=False)


@pytest.mark.parametrize("path", ["", "helloworld", "helloworld/", "/", "//helloworld"])
def test_fewer_than_two_parts_is_not_found(path: str) -> None:
    with pytest.raises(NotFound) as raised:
        parse_path(path)
    assert raised.value == NotFound("v1", "Not found")


@pytest.mark.parametrize(
    "path",
    [
        "paid/call?",
        "paid/call#",
        "paid/call%3F",
        "paid/c%61ll",
        "based/x/..",
        "paid/./call",
        "paid/call.json",
        "paid/\u217dall",  # SMALL ROMAN NUMERAL ONE HUNDRED, a look-alike of "c"
        "paid/\uff43all",  # FULLWIDTH LATIN SMALL LETTER C
        "paid/call\x00",
        "paid/call\n",
        "paid/call ",
        "paid/" + "c" * 129,
        "paid/call/../../admin",
    ],
)
def test_a_part_that_is_not_a_plain_ascii_name_is_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        parse_path(path)


def test_the_longest_part_is_still_a_name() -> None:
    assert parse_path("paid/" + "c" * 128).method == "c" * 128


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"raw_path": b"/v1/paid/call%3F", "path": "/v1/paid/call?"}, "paid/call%3F"),
        ({"raw_path": b"/api/v1/a/b", "root_path": "/api", "path": "/v1/a/b"}, "a/b"),
        ({"path": "/v1/paid/call"}, "paid/call"),
    ],
)
def test_the_call_path_is_read_as_sent(scope: dict[str, object], expected: str) -> None:
    assert raw_call_path(scope) == expected
