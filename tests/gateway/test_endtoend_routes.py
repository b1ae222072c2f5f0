"""/endtoend/check answers 200 or M3O's 500; /endtoend/mailin forwards the body untouched
with the secret from the query or Basic auth, and is 200 unless the secret is refused."""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette

from gateway.support import build_app, client_for
from m3o.gateway.endtoend_routes import endtoend_routes
from m3o.runtime.errors import Unauthorized
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.proto.fakes import FakeEndtoendClient

BODY = b'{"headers": {"to": "e2e@example.com"},  "plain": "x"}'


def _app(endtoend: FakeEndtoendClient, max_body_bytes: int = 1024) -> Starlette:
    routes = endtoend_routes(endtoend, max_body_bytes=max_body_bytes, timeout=5.0)
    app, _ = build_app(extra_routes=routes)
    return app


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_healthy_check_is_200_and_an_empty_object(method: str) -> None:
    endtoend = FakeEndtoendClient()
    endtoend.check.returns(pb.CheckResponse(healthy=True))
    async with client_for(_app(endtoend)) as http:
        response = await http.request(method, "/endtoend/check")
    assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_unhealthy_check_is_500_with_the_detail(method: str) -> None:
    endtoend = FakeEndtoendClient()
    endtoend.check.returns(pb.CheckResponse(healthy=False, detail="No recent successful check"))
    async with client_for(_app(endtoend)) as http:
        response = await http.request(method, "/endtoend/check")
    assert response.status_code == 500
    assert response.json() == {
        "id": "endtoend.check",
        "code": 500,
        "detail": "No recent successful check",
        "status": "Internal Server Error",
    }


async def test_mail_is_forwarded_byte_for_byte_with_the_query_secret() -> None:
    endtoend = FakeEndtoendClient()
    async with client_for(_app(endtoend)) as http:
        response = await http.post(
            "/endtoend/mailin?secret=s3cret",
            content=BODY,
            headers={"Content-Type": "application/json"},
        )
    assert (response.status_code, response.json()) == (200, {})
    [recorded] = endtoend.mailin.recorded
    assert recorded.request == pb.MailinRequest(body=BODY, secret="s3cret")


async def test_the_secret_may_come_as_the_basic_auth_password() -> None:
    endtoend = FakeEndtoendClient()
    credentials = base64.b64encode(b"mailin:from:basic").decode()
    async with client_for(_app(endtoend)) as http:
        response = await http.post(
            "/endtoend/mailin", content=BODY, headers={"Authorization": f"Basic {credentials}"}
        )
    assert response.status_code == 200
    assert endtoend.mailin.calls[0].secret == "from:basic"


@pytest.mark.parametrize(
    "authorization", ["", "Bearer abc", "Basic !!!not-base64", "Basic " + "bm9jb2xvbg=="]
)
async def test_no_usable_secret_is_forwarded_empty(authorization: str) -> None:
    endtoend = FakeEndtoendClient()
    headers = {"Authorization": authorization} if authorization else {}
    async with client_for(_app(endtoend)) as http:
        await http.post("/endtoend/mailin", content=BODY, headers=headers)
    assert endtoend.mailin.calls[0].secret == ""


async def test_a_refused_secret_is_401() -> None:
    endtoend = FakeEndtoendClient()
    endtoend.mailin.raises(Unauthorized("endtoend.mailin", "Unauthorized"))
    async with client_for(_app(endtoend)) as http:
        response = await http.post("/endtoend/mailin?secret=wrong", content=BODY)
    assert response.status_code == 401
    assert response.json()["id"] == "endtoend.mailin"


async def test_any_body_is_taken_even_one_over_the_limit() -> None:
    endtoend = FakeEndtoendClient()
    async with client_for(_app(endtoend, max_body_bytes=10)) as http:
        too_large = await http.post("/endtoend/mailin?secret=s", content=BODY)
        not_json = await http.post(
            "/endtoend/mailin?secret=s", content=b"a=1", headers={"Content-Type": "text/plain"}
        )
    assert too_large.status_code == not_json.status_code == 200
    assert endtoend.mailin.calls == [
        pb.MailinRequest(body=b"", secret="s", too_large=True),
        pb.MailinRequest(body=b"a=1", secret="s"),
    ]
