"""The platform API transcodes HTTP JSON to RPCs and answers in M3O's formats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from google.protobuf.message import Message
from structlog.testing import capture_logs

from gateway.support import (
    HELLO,
    KINDS,
    Kinds,
    Recorder,
    Served,
    build_app,
    client_for,
    kinds_spec,
)
from m3o.gateway import GatewaySettings
from m3o.runtime.rpc import MethodSpec, ServiceSpec

BIG = 2**62 + 1  # far beyond a double's exact integers


def _public_hello(recorder: Recorder) -> Served:
    return Served(HELLO, recorder, public=["Helloworld.Call"])


async def test_post_json_body_is_the_request_and_the_answer_is_its_json() -> None:
    recorder = Recorder()
    app, _ = build_app(_public_hello(recorder))
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", json={"name": "Alice"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Hello Alice"}


async def test_empty_body_is_the_empty_request() -> None:
    recorder = Recorder()
    app, _ = build_app(_public_hello(recorder))
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", content=b"")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello "}


async def test_empty_response_message_is_an_empty_object() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Fixed"]))
    async with client_for(app) as http:
        response = await http.post("/lab/fixed")
    assert response.status_code == 200
    assert response.content == b"{}"


async def test_64_bit_integers_are_json_numbers_and_defaults_are_omitted() -> None:
    answer: Any = KINDS(big=BIG, ubig=2**64 - 1, small=0, name="", flag=False, tags=[])
    answer.counts["x"] = BIG
    answer.child.big = -BIG
    app, _ = build_app(Served(kinds_spec(), Kinds(answer), public=["Lab.Fixed"]))
    async with client_for(app) as http:
        response = await http.post("/lab/fixed")
    assert response.status_code == 200
    assert response.json() == {
        "big": BIG,
        "ubig": 2**64 - 1,
        "counts": {"x": BIG},
        "child": {"big": -BIG},
    }
    assert b'"big":4611686018427387905' in response.content


async def test_input_accepts_proto_names_camel_case_and_ignores_unknown_fields() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.post(
            "/lab/mirror",
            json={"big": BIG, "color": "RED", "tags": ["a"], "unknown": 1, "child": {"name": "c"}},
        )
    assert response.status_code == 200
    assert response.json() == {"big": BIG, "color": "RED", "tags": ["a"], "child": {"name": "c"}}


async def test_get_query_string_is_the_request_with_dotted_keys_nested() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.get(
            "/lab/mirror",
            params=[
                ("big", str(BIG)),
                ("flag", "true"),
                ("tags", "only"),
                ("counts.x", "3"),
                ("child.name", "kid"),
                ("child.child.small", "7"),
                ("children.name", "only-child"),
                ("color", "RED"),
            ],
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "big": BIG,
        "flag": True,
        "tags": ["only"],
        "counts": {"x": 3},
        "child": {"name": "kid", "child": {"small": 7}},
        "children": [{"name": "only-child"}],
        "color": "RED",
    }


async def test_repeated_query_keys_become_a_list() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.get("/lab/mirror?tags=a&tags=b&tags=c")
    assert response.json() == {"tags": ["a", "b", "c"]}


async def test_conflicting_query_keys_are_bad_request() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.get("/lab/mirror?child=x&child.name=y")
    assert response.status_code == 400
    assert response.json()["id"] == "lab.mirror"


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_body_fields_win_over_query_fields(method: str) -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.request(
            method,
            "/lab/mirror?name=query&small=1&child.name=query-child&child.small=2",
            json={"name": "body", "child": {"name": "body-child"}},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "body",
        "small": 1,
        "child": {"name": "body-child", "small": 2},
    }


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b"42", "Request body must be a JSON object"),
        (b"null", "Request body must be a JSON object"),
    ],
)
async def test_body_that_is_not_a_json_object_is_bad_request(content: bytes, detail: str) -> None:
    app, _ = build_app(_public_hello(Recorder()))
    async with client_for(app) as http:
        response = await http.post(
            "/helloworld/call", content=content, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "id": "helloworld.call",
        "code": 400,
        "detail": detail,
        "status": "Bad Request",
    }


async def test_field_of_the_wrong_type_is_bad_request() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", json={"big": "many"})
    assert response.status_code == 400
    assert response.json()["id"] == "lab.mirror"
    assert response.json()["detail"].startswith("Invalid request")


async def test_too_large_body_is_413_before_the_handler_runs() -> None:
    recorder = Recorder()
    settings = GatewaySettings(max_body_bytes=64)
    app, _ = build_app(_public_hello(recorder), settings=settings)
    too_large = {
        "id": "helloworld.call",
        "code": 413,
        "detail": "Request body too large",
        "status": "Request Entity Too Large",
    }

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "'
        yield b"x" * 100
        yield b'"}'

    async with client_for(app) as http:
        declared = await http.post("/helloworld/call", json={"name": "x" * 100})
        streamed = await http.post("/helloworld/call", content=chunks())
        fits = await http.post("/helloworld/call", json={"name": "x" * 10})
    assert declared.status_code == streamed.status_code == 413
    assert declared.json() == streamed.json() == too_large
    assert fits.status_code == 200
    assert len(recorder.seen) == 1


async def test_default_body_limit_is_one_mebibyte() -> None:
    app, _ = build_app(_public_hello(Recorder()))
    async with client_for(app) as http:
        under = await http.post("/helloworld/call", json={"name": "x" * (1024 * 1024 - 20)})
        over = await http.post("/helloworld/call", json={"name": "x" * (1024 * 1024)})
    assert under.status_code == 200
    assert over.status_code == 413


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("badrequest", 400, "Bad Request"),
        ("unauthorized", 401, "Unauthorized"),
        ("forbidden", 403, "Forbidden"),
        ("notfound", 404, "Not Found"),
        ("conflict", 409, "Conflict"),
        ("toomany", 429, "Too Many Requests"),
        ("internal", 500, "Internal Server Error"),
        ("unavailable", 503, "Service Unavailable"),
    ],
)
async def test_every_error_kind_is_exact_json_with_its_status(
    name: str, status: int, reason: str
) -> None:
    app, _ = build_app(_public_hello(Recorder()))
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", json={"name": name})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "helloworld.call",
        "code": status,
        "detail": f"{name} happened",
        "status": reason,
    }


async def test_too_many_requests_says_when_to_retry() -> None:
    app, _ = build_app(_public_hello(Recorder()))
    async with client_for(app) as http:
        limited = await http.post("/helloworld/call", json={"name": "toomany"})
        other = await http.post("/helloworld/call", json={"name": "badrequest"})
    assert limited.headers["retry-after"] == "1"
    assert "retry-after" not in other.headers


async def test_handler_crash_is_a_generic_500_without_its_text() -> None:
    app, _ = build_app(_public_hello(Recorder()))
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", json={"name": "crash"})
    assert response.status_code == 500
    assert response.json() == {
        "id": "helloworld.call",
        "code": 500,
        "detail": "Internal server error",
        "status": "Internal Server Error",
    }


class BrokenTransport:
    """A transport failing with a non-M3O error, as a bug would."""

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        raise RuntimeError("connection string has password hunter2")

    def server_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Message]:
        raise NotImplementedError


async def test_transport_failure_is_a_logged_generic_500() -> None:
    app, _ = build_app(_public_hello(Recorder()), transport=BrokenTransport())
    with capture_logs() as logs:
        async with client_for(app) as http:
            response = await http.post("/helloworld/call", json={"name": "x"})
    assert response.status_code == 500
    assert response.json()["detail"] == "Internal server error"
    assert "hunter2" not in response.text
    failures = [e for e in logs if e["event"] == "platform_api.call_failed"]
    assert failures[0]["log_level"] == "error"
    assert "hunter2" in str(failures[0]["exc_info"])


async def test_anonymous_call_to_non_public_endpoint_is_unauthorized() -> None:
    recorder = Recorder()
    app, _ = build_app(Served(HELLO, recorder))
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", json={"name": "x"})
    assert response.status_code == 401
    assert response.json() == {
        "id": "helloworld.call",
        "code": 401,
        "detail": "Unauthorized",
        "status": "Unauthorized",
    }
    assert recorder.seen == []


async def test_bad_bearer_token_is_unauthorized() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        response = await http.post(
            "/helloworld/call", json={}, headers={"Authorization": "Bearer forged"}
        )
    assert response.status_code == 401


async def test_bearer_token_is_forwarded_and_the_service_knows_the_caller() -> None:
    recorder = Recorder()
    app, _ = build_app(Served(HELLO, recorder))
    async with client_for(app) as http:
        response = await http.post(
            "/helloworld/call", json={"name": "x"}, headers={"Authorization": "Bearer good"}
        )
    assert response.status_code == 200
    _, ctx = recorder.seen[0]
    assert ctx.metadata["authorization"] == "Bearer good"
    assert ctx.account is not None and ctx.account.id == "c1"


async def test_non_bearer_authorization_is_not_forwarded() -> None:
    recorder = Recorder()
    app, _ = build_app(_public_hello(recorder))
    async with client_for(app) as http:
        await http.post("/helloworld/call", json={}, headers={"Authorization": "Basic dTpw"})
    _, ctx = recorder.seen[0]
    assert "authorization" not in ctx.metadata
    assert ctx.account is None


async def test_request_id_is_forwarded_and_echoed() -> None:
    recorder = Recorder()
    app, _ = build_app(_public_hello(recorder))
    async with client_for(app) as http:
        given = await http.post("/helloworld/call", json={}, headers={"X-Request-Id": "req-42"})
        generated = await http.post("/helloworld/call", json={})
        failed = await http.post("/nope/call", headers={"X-Request-Id": "req-43"})
        insane = await http.post("/helloworld/call", headers={"X-Request-Id": "a b\tc" * 50})
    assert given.headers["x-request-id"] == "req-42"
    assert recorder.seen[0][1].metadata["x-request-id"] == "req-42"
    fresh = generated.headers["x-request-id"]
    assert len(fresh) >= 16
    assert recorder.seen[1][1].metadata["x-request-id"] == fresh
    assert failed.headers["x-request-id"] == "req-43"
    assert insane.headers["x-request-id"] != "a b\tc" * 50


async def test_client_address_is_the_peer_unless_a_trusted_proxy_forwards() -> None:
    recorder = Recorder()
    forwarded = {"X-Forwarded-For": "198.51.100.9, 10.1.2.3"}
    trusting = GatewaySettings(trusted_proxies=["10.0.0.0/8"])
    direct_app, _ = build_app(_public_hello(recorder))
    proxied_app, _ = build_app(_public_hello(recorder), settings=trusting)
    async with client_for(direct_app, peer="203.0.113.7") as http:
        await http.post("/helloworld/call", json={}, headers=forwarded)
    async with client_for(proxied_app, peer="203.0.113.7") as http:
        await http.post("/helloworld/call", json={}, headers=forwarded)
    async with client_for(proxied_app, peer="10.9.9.9") as http:
        await http.post("/helloworld/call", json={}, headers=forwarded)
        await http.post("/helloworld/call", json={})
    addresses = [ctx.metadata["x-client-address"] for _, ctx in recorder.seen]
    assert addresses == ["203.0.113.7", "203.0.113.7", "198.51.100.9", "10.9.9.9"]


async def test_client_address_is_the_last_forwarded_entry_no_trusted_proxy_wrote() -> None:
    recorder = Recorder()
    app, _ = build_app(
        _public_hello(recorder), settings=GatewaySettings(trusted_proxies=["10.0.0.0/8"])
    )
    # The client wrote the first entry itself; the proxies appended the rest.
    forged = {"X-Forwarded-For": "192.0.2.1, 198.51.100.9, 10.1.2.3"}
    async with client_for(app, peer="10.9.9.9") as http:
        await http.post("/helloworld/call", json={}, headers=forged)
        await http.post("/helloworld/call", json={}, headers={"X-Forwarded-For": "10.4.4.4"})
    addresses = [ctx.metadata["x-client-address"] for _, ctx in recorder.seen]
    assert addresses == ["198.51.100.9", "10.4.4.4"]


async def test_streaming_method_answers_that_websockets_serve_it() -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Stream"]))
    async with client_for(app) as http:
        response = await http.post("/helloworld/stream", json={"name": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "id": "helloworld.stream",
        "code": 400,
        "detail": "Streaming endpoints are served over websockets",
        "status": "Bad Request",
    }


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_other_methods_are_not_allowed(method: str) -> None:
    recorder = Recorder()
    app, _ = build_app(_public_hello(recorder))
    async with client_for(app) as http:
        response = await http.request(method, "/helloworld/call")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert response.json() == {
            "id": "api",
            "code": 405,
            "detail": "Method Not Allowed",
            "status": "Method Not Allowed",
        }
    assert recorder.seen == []
