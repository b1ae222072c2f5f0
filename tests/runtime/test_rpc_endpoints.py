"""The one rule for which endpoint of an API a /v1 path names (gateway, publicapi, explore)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from m3o.runtime.rpc.endpoints import (
    endpoint_path,
    find_endpoint,
    is_endpoint_name,
    main_service,
)


@dataclass(frozen=True)
class Method:
    service: str
    method: str

    @property
    def name(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.method}"


def test_the_main_service_is_the_one_named_like_the_api_else_the_only_one() -> None:
    assert main_service("helloworld", ["x.Greeter", "hello.HelloWorld"]) == "hello.HelloWorld"
    assert main_service("HELLOWORLD", ["Helloworld"]) == "Helloworld"
    assert main_service("greeter", ["hello.Helloworld"]) == "hello.Helloworld"
    assert main_service("greeter", ["a.One", "b.Two"]) is None
    assert main_service("greeter", []) is None


def test_a_one_part_path_names_a_method_of_the_main_service() -> None:
    endpoints = [Method("hello.Helloworld", "Call"), Method("hello.Other", "Call")]
    found = find_endpoint("greeter", endpoints[:1], "greeter", "call", short=True)
    assert found == endpoints[0]
    assert find_endpoint("greeter", endpoints, "greeter", "call", short=True) is None
    assert find_endpoint("helloworld", endpoints, "helloworld", "CALL", short=True) == endpoints[0]


def test_a_two_part_path_names_its_handler_and_method_in_any_case() -> None:
    endpoints = [Method("hello.Helloworld", "Call"), Method("hello.Other", "Call")]
    assert find_endpoint("helloworld", endpoints, "other", "call", short=False) == endpoints[1]
    assert find_endpoint("helloworld", endpoints, "greeter", "call", short=False) is None


def test_a_name_spelled_as_the_path_spells_it_wins_over_one_differing_in_case() -> None:
    endpoints = [Method("h.Helloworld", "CALL"), Method("h.Helloworld", "Call")]
    assert find_endpoint("helloworld", endpoints, "helloworld", "call", short=True) == endpoints[1]
    assert find_endpoint("helloworld", endpoints, "helloworld", "CALL", short=True) == endpoints[0]


def test_the_path_of_an_endpoint_is_short_for_the_main_service_only() -> None:
    main, other = Method("h.Helloworld", "Call"), Method("h.Other", "Ping")
    assert endpoint_path("helloworld", main, "h.Helloworld") == "/helloworld/Call"
    assert endpoint_path("helloworld", other, "h.Helloworld") == "/helloworld/Other/Ping"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Helloworld.Call", True),
        ("_a.b_2", True),
        ("Call", False),
        ("a.b.c", False),
        ("a-b.Call", False),
        ("1a.Call", False),
        ("A.Call\n", False),
        ("Ä.Call", False),
    ],
)
def test_an_endpoint_name_is_two_identifiers_and_a_dot(name: str, valid: bool) -> None:
    assert is_endpoint_name(name) is valid
