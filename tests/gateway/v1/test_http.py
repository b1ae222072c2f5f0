"""The public API over HTTP: routing, the request, keys, and what the upstream receives."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.v1.support import (
    CUSTOMER_TOKEN,
    KEY,
    PROJECT,
    Catalog,
    FakeV1,
    Keys,
    entry,
    gateway,
    hello_entry,
    hello_file,
    key_record,
)
from m3o.gateway.v1.http_endpoint import request_json
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest
from m3o.services.helloworld.proto import helloworld_pb2 as hello_pb
from m3o.services.v1.proto.client import SPEC

AUTH = {"Authorization": f"Bearer {KEY}"}
JSON_TYPE = {"Content-Type": "application/json"}
UNAUTHORIZED = {"id": "v1", "code": 401, "detail": "Unauthorized", "status": "Unauthorized"}


def _error(code: int, detail: str, status: str, error_id: str = "v1") -> dict[str, Any]:
    return {"id": error_id, "code": code, "detail": detail, "status": status}


def _names(gw: Any) -> list[str]:
    return [request.name for request, _ in gw.hello.seen]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/helloworld/call",
        "/v1/helloworld/Call",
        "/v1/Helloworld/call",
        "/v1/helloworld/helloworld/call",
        "/v1/helloworld/Helloworld/Call/more/parts",
    ],
)
async def test_every_spelling_calls_helloworld_call(counters: CounterStore, path: str) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post(path, json={"name": "Alice"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"message": "Hello Alice"}
    [(_, ctx)] = gw.hello.seen
    assert (ctx.service, ctx.method) == ("helloworld", "Call")
    [event] = await gw.events()
    assert (event.api_name, event.endpoint_name) == ("helloworld", "Helloworld.Call")


async def test_two_part_path_reaches_the_main_service_of_an_api_named_otherwise(
    counters: CounterStore,
) -> None:
    greeter = entry("greeter", "local:helloworld", files=[hello_file()])
    gw = gateway(counters, catalog=Catalog(greeter))
    async with gw.http() as http:
        response = await http.post("/v1/greeter/call", json={"name": "Bo"}, headers=AUTH)
    assert response.json() == {"message": "Hello Bo"}
    [event] = await gw.events()
    assert (event.api_name, event.endpoint_name) == ("greeter", "Helloworld.Call")


async def test_fewer_than_two_parts_is_not_found(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == _error(404, "Not found", "Not Found")


async def test_unknown_api_is_not_found_no_such_api(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/nothere/call", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == _error(404, "No such API", "Not Found")


async def test_unknown_endpoint_of_a_known_api_is_not_found(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/shout", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == _error(404, "No such endpoint", "Not Found")
    assert gw.hello.seen == []


async def test_key_is_checked_before_the_catalog(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/nothere/call")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_methods_other_than_post_and_get_are_405(counters: CounterStore, method: str) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.request(
            method, "/v1/helloworld/call?name=Query", json={"name": "Body"}, headers=AUTH
        )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert gw.hello.seen == []
    assert await gw.count("total") == 0


async def test_unsupported_method_is_405(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.request("TRACE", "/v1/helloworld/call", headers=AUTH)
    assert response.status_code == 405
    assert gw.hello.seen == []


# The request: body, query, empty requests.


async def test_get_query_is_the_request(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.get("/v1/helloworld/call?name=Bob", headers=AUTH)
    assert response.json() == {"message": "Hello Bob"}


async def test_body_fields_win_over_the_query(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        won = await http.post("/v1/helloworld/call?name=Q", json={"name": "B"}, headers=AUTH)
        filled = await http.post("/v1/helloworld/call?name=Q", json={}, headers=AUTH)
    assert won.json() == {"message": "Hello B"}
    assert filled.json() == {"message": "Hello Q"}


async def test_query_values_are_shaped_by_the_request_message(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call?name=A&messages=3", headers=AUTH)
    assert response.json() == {"message": "Hello A"}


def test_dotted_query_keys_become_nested_objects_and_body_wins() -> None:
    query = [("a.b", "1"), ("a.c", "2"), ("d", "3")]
    assert request_json(b"", query, None) == {"a": {"b": "1", "c": "2"}, "d": "3"}
    merged = request_json(b'{"a": {"b": 9}, "e": 5}', query, None)
    assert merged == {"a": {"b": 9, "c": "2"}, "d": "3", "e": 5}


def test_query_fits_the_descriptor_when_known() -> None:
    descriptor = hello_pb.StreamRequest.DESCRIPTOR
    assert request_json(b"", [("messages", "2")], descriptor) == {"messages": "2"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"name=Alice", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
    ],
)
async def test_body_that_is_not_a_json_object_is_bad_request_and_costs_nothing(
    counters: CounterStore, body: bytes, detail: str
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post(
            "/v1/helloworld/call", content=body, headers={**AUTH, **JSON_TYPE}
        )
    assert response.status_code == 400
    assert response.json() == _error(400, detail, "Bad Request")
    assert gw.hello.seen == []
    assert await gw.count("total") == 0
    assert await gw.events() == []


async def test_request_that_does_not_fit_the_message_is_malformed(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", json={"name": [1, 2]}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == _error(
        400, "Request message malformed, please check and try again", "Bad Request"
    )
    assert await gw.count("total") == 0


async def test_streaming_endpoint_over_plain_http_is_bad_request(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/stream", json={"name": "A"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == _error(
        400, "Streaming endpoints are served over websockets", "Bad Request"
    )
    assert await gw.count("total") == 0


# Keys.


async def test_no_key_is_unauthorized(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer m3o_unknown",
        "Bearer ",
        "Token " + KEY,
        KEY,
        "Basic " + base64.b64encode(KEY.encode()).decode(),  # no colon
        "Basic not-base64!",
    ],
)
async def test_unknown_or_misplaced_key_is_unauthorized(
    counters: CounterStore, authorization: str
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert gw.hello.seen == []


@pytest.mark.parametrize(
    "credentials",
    [f"anything:{KEY}", f":{KEY}", f"{KEY}:"],
    ids=["curl -u x:KEY", "curl -u :KEY", "curl -u KEY:"],
)
async def test_basic_auth_with_the_key_as_password_or_user_name_is_accepted(
    counters: CounterStore, credentials: str
) -> None:
    gw = gateway(counters)
    basic = base64.b64encode(credentials.encode()).decode()
    async with gw.http() as http:
        response = await http.post(
            "/v1/helloworld/call", json={"name": "A"}, headers={"Authorization": f"Basic {basic}"}
        )
    assert response.status_code == 200
    assert response.json() == {"message": "Hello A"}


async def test_basic_auth_with_an_unknown_password_is_unauthorized_whatever_the_user(
    counters: CounterStore,
) -> None:
    # The key is the password when there is one: a right key as user name does not help.
    gw = gateway(counters)
    basic = base64.b64encode(f"{KEY}:m3o_wrong".encode()).decode()
    async with gw.http() as http:
        response = await http.post(
            "/v1/helloworld/call", json={"name": "A"}, headers={"Authorization": f"Basic {basic}"}
        )
    assert response.status_code == 401
    assert gw.hello.seen == []


async def test_websocket_protocol_header_is_not_a_key_for_plain_http(
    counters: CounterStore,
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", headers={"Sec-WebSocket-Protocol": KEY})
    assert response.status_code == 401


async def test_key_records_are_cached_between_calls(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        for _ in range(3):
            assert (await http.post("/v1/helloworld/call", headers=AUTH)).status_code == 200
    assert gw.keys.lookups == 1


async def test_upstream_gets_a_token_of_the_key_and_the_request_id_never_the_key(
    counters: CounterStore,
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post(
            "/v1/helloworld/call",
            json={"name": "A"},
            headers={**AUTH, "X-Request-Id": "req-42", "Cookie": "session=1"},
        )
    assert response.headers["X-Request-Id"] == "req-42"
    [(_, ctx)] = gw.hello.seen
    assert dict(ctx.metadata) == {"authorization": "Bearer token-key-1", "x-request-id": "req-42"}
    assert ctx.account is not None and ctx.account.id == "key-1"
    assert gw.tokens.granted == ["key-1"]


# Key management, transcoded to the v1 service with the caller's token.


@pytest.mark.parametrize(
    ("path", "method", "body", "answer"),
    [
        (
            "/v1/api/keys/generate",
            "GenerateKey",
            {"scopes": ["helloworld"], "description": "mine"},
            {"api_key": "m3o_new", "api_key_id": "key-9"},
        ),
        ("/v1/api/keys/list", "ListKeys", {}, {}),
        ("/v1/api/keys/revoke", "RevokeKey", {"id": "key-1"}, {}),
        ("/v1/api/apis/list", "ListAPIs", {}, {"names": ["helloworld"]}),
    ],
)
async def test_key_management_paths_call_the_v1_service_with_the_callers_token(
    counters: CounterStore, path: str, method: str, body: dict[str, Any], answer: dict[str, Any]
) -> None:
    v1 = FakeV1()
    gw = gateway(counters, extra_services=[(SPEC, v1)])
    async with gw.http() as http:
        response = await http.post(
            path, json=body, headers={"Authorization": f"Bearer {CUSTOMER_TOKEN}"}
        )
    assert response.status_code == 200
    assert response.json() == answer
    [(called, request, ctx)] = v1.calls
    assert called == method
    assert ctx.account is not None and ctx.account.type == "customer"
    if method == "GenerateKey":
        assert list(request.scopes) == ["helloworld"] and request.description == "mine"
    if method == "RevokeKey":
        assert request.id == "key-1"
    assert gw.hello.seen == []


async def test_key_management_answers_errors_of_the_v1_service(counters: CounterStore) -> None:
    gw = gateway(counters, extra_services=[(SPEC, FakeV1())])
    async with gw.http() as http:
        response = await http.post("/v1/api/keys/list", headers={"Authorization": "Bearer bad"})
    assert response.status_code == 401


async def test_a_scoped_key_may_call_its_api_whatever_the_case(counters: CounterStore) -> None:
    keys = Keys({KEY: key_record(scopes=["helloworld"])})
    gw = gateway(counters, keys=keys, catalog=Catalog(hello_entry()))
    async with gw.http() as http:
        response = await http.post("/v1/Helloworld/Call", json={"name": "A"}, headers=AUTH)
    assert response.status_code == 200


def test_request_json_refuses_non_objects() -> None:
    with pytest.raises(BadRequest):
        request_json(b"3", [], None)


async def test_event_url_is_the_path_without_query(counters: CounterStore) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        await http.get("/v1/helloworld/Call?name=A", headers=AUTH)
    [event] = await gw.events()
    assert event.url == "/v1/helloworld/Call"
    assert (event.user_id, event.project_id, event.namespace) == (PROJECT, PROJECT, "micro")


async def test_a_served_answer_sends_each_header_once_in_its_wire_form(
    counters: CounterStore,
) -> None:
    gw = gateway(counters)
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
    assert response.status_code == 200, response.text
    names = [name for name, _ in response.headers.raw]
    assert sorted(names) == sorted(
        [
            b"ratelimit-limit",
            b"ratelimit-remaining",
            b"ratelimit-reset",
            b"x-m3o-price",
            b"content-length",
            b"content-type",
            b"x-request-id",
        ]
    )
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["X-M3O-Price"] == "free"
    assert int(response.headers["RateLimit-Remaining"]) < int(response.headers["RateLimit-Limit"])
