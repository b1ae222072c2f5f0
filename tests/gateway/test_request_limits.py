"""What the platform API accepts before a request goes anywhere: JSON bodies only, POST and
GET only, nesting bounded, no NUL characters. Each refusal is a clear 4xx in M3O's format
and the service never sees the request (not even to authenticate it)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.support import HELLO, Kinds, Recorder, Served, build_app, client_for, kinds_spec

MAX_DEPTH = 64  # the documented limit (m3o.gateway.payload.MAX_DEPTH)
JSON = {"Content-Type": "application/json"}
TOO_DEEP = f"Request is nested too deeply (at most {MAX_DEPTH} levels)"
HAS_NUL = "Request must not contain NUL characters"


def _error(error_id: str, code: int, detail: str, status: str) -> dict[str, Any]:
    return {"id": error_id, "code": code, "detail": detail, "status": status}


def _nested(depth: int) -> bytes:
    """An object whose (unknown) field holds arrays nested so the whole is ``depth`` deep."""
    inner = depth - 1
    return b'{"extra":' + b"[" * inner + b"]" * inner + b"}"


class Counting(Kinds):
    """The lab handler, counting the requests it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def mirror(self, request: Any, ctx: Any) -> Any:
        self.calls += 1
        return await super().mirror(request, ctx)


# Nesting.


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1000, 2000])
async def test_deeply_nested_body_is_bad_request_before_authentication(depth: int) -> None:
    lab = Counting()
    app, _ = build_app(Served(kinds_spec(), lab))  # Lab.Mirror needs a customer
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", content=_nested(depth), headers=JSON)
    assert response.status_code == 400
    assert response.json() == _error("lab.mirror", 400, TOO_DEEP, "Bad Request")
    assert lab.calls == 0


async def test_nesting_up_to_the_limit_reaches_the_service() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds()))
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", content=_nested(MAX_DEPTH), headers=JSON)
    assert response.status_code == 401  # parsed, then refused by the service's rules


async def test_deeply_nested_message_fields_are_bad_request() -> None:
    lab = Counting()
    app, _ = build_app(Served(kinds_spec(), lab, public=["Lab.Mirror"]))
    body = b'{"child":' * MAX_DEPTH + b"{}" + b"}" * MAX_DEPTH
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", content=body, headers=JSON)
    assert response.json() == _error("lab.mirror", 400, TOO_DEEP, "Bad Request")
    assert lab.calls == 0


async def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    name = "[{" * 500
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", json={"name": name, "tags": ["]}" * 500]})
    assert response.status_code == 200
    assert response.json()["name"] == name


async def test_deeply_dotted_query_key_is_bad_request() -> None:
    lab = Counting()
    app, _ = build_app(Served(kinds_spec(), lab, public=["Lab.Mirror"]))
    async with client_for(app) as http:
        too_deep = await http.get("/lab/mirror?" + "child." * MAX_DEPTH + "name=x")
        fits = await http.get("/lab/mirror?" + "child." * 3 + "name=x")
    assert too_deep.status_code == 400
    assert too_deep.json() == _error("lab.mirror", 400, TOO_DEEP, "Bad Request")
    assert fits.status_code == 200
    assert lab.calls == 1


# NUL characters.


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a\\u0000b"}',
        b'{"tags": ["ok", "\\u0000"]}',
        b'{"child": {"name": "x\\u0000"}}',
        b'{"counts": {"k\\u0000ey": 1}}',
        b'{"unknown\\u0000": 1}',
    ],
)
async def test_nul_character_anywhere_in_the_body_is_bad_request(body: bytes) -> None:
    lab = Counting()
    app, _ = build_app(Served(kinds_spec(), lab))
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == _error("lab.mirror", 400, HAS_NUL, "Bad Request")
    assert lab.calls == 0


@pytest.mark.parametrize("query", ["name=a%00b", "na%00me=x", "tags=ok&tags=%00"])
async def test_nul_character_in_the_query_is_bad_request(query: str) -> None:
    lab = Counting()
    app, _ = build_app(Served(kinds_spec(), lab, public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.get(f"/lab/mirror?{query}")
    assert response.json() == _error("lab.mirror", 400, HAS_NUL, "Bad Request")
    assert lab.calls == 0


async def test_escaped_backslash_before_u0000_is_just_text() -> None:
    app, _ = build_app(Served(kinds_spec(), Kinds(), public=["Lab.Mirror"]))
    async with client_for(app) as http:
        response = await http.post("/lab/mirror", content=b'{"name": "a\\\\u0000b"}', headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"name": "a\\u0000b"}


# Content-Type.


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonp",
    ],
)
async def test_body_not_declared_as_json_is_unsupported_media_type(
    content_type: str | None,
) -> None:
    recorder = Recorder()
    app, _ = build_app(Served(HELLO, recorder, public=["Helloworld.Call"]))
    headers = {"Content-Type": content_type} if content_type else {}
    async with client_for(app) as http:
        response = await http.post("/helloworld/call", content=b'{"name":"x"}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    assert response.json() == _error(
        "helloworld.call",
        415,
        "Content-Type must be application/json",
        "Unsupported Media Type",
    )
    assert recorder.seen == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/vnd.m3o+json",
    ],
)
async def test_json_content_types_are_accepted(content_type: str) -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]))
    async with client_for(app) as http:
        response = await http.post(
            "/helloworld/call", content=b'{"name":"x"}', headers={"Content-Type": content_type}
        )
    assert response.status_code == 200
    assert response.json() == {"message": "Hello x"}


async def test_empty_body_needs_no_content_type() -> None:
    app, _ = build_app(Served(HELLO, Recorder(), public=["Helloworld.Call"]))
    async with client_for(app) as http:
        bare = await http.post("/helloworld/call")
        typed = await http.post("/helloworld/call", content=b"", headers={"Content-Type": "x/y"})
        query = await http.get("/helloworld/call?name=Q")
    assert bare.json() == typed.json() == {"message": "Hello "}
    assert query.json() == {"message": "Hello Q"}


# Methods.


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_methods_other_than_post_and_get_are_not_allowed(method: str) -> None:
    recorder = Recorder()
    app, _ = build_app(Served(HELLO, recorder, public=["Helloworld.Call"]))
    async with client_for(app) as http:
        response = await http.request(method, "/helloworld/call", json={"name": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert response.json() == _error("api", 405, "Method Not Allowed", "Method Not Allowed")
    assert recorder.seen == []
