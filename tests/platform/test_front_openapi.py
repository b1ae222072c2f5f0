"""The whole HTTP front (every service, in process): every path /openapi.json lists answers,
the v1 service at its key-management paths, admin operations included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from m3o.platform.local import LocalPlatform, open_local
from support.password_hash import CHEAP_PASSWORD_HASH
from support.platform import bearer

ADMIN_PASSWORD = "front-openapi-admin-password"
EMAIL = "front@example.com"
PASSWORD = "a long enough secret"
ROUTER_ERROR_IDS = ("api", "v1")
"""Ids of the errors the front answers before any service is called (no such path)."""


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    platform: LocalPlatform = await open_local(
        tmp_path, {"M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD, **CHEAP_PASSWORD_HASH}
    )
    app = platform.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as http:
            yield http


async def _token(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["token"]["access_token"])


async def _customer(http: httpx.AsyncClient, admin: str) -> tuple[str, str]:
    """A verified customer with a password: their id and an access token."""
    created = await http.post("/customers/create", json={"email": EMAIL}, headers=bearer(admin))
    assert created.status_code == 200, created.text
    customer_id = str(created.json()["customer"]["id"])
    account = {
        "id": customer_id,
        "type": "customer",
        "scopes": ["customer"],
        "name": EMAIL,
        "secret": PASSWORD,
    }
    generated = await http.post("/auth/generate", json=account, headers=bearer(admin))
    assert generated.status_code == 200, generated.text
    verified = await http.post(
        "/customers/markVerified", json={"id": customer_id}, headers=bearer(admin)
    )
    assert verified.status_code == 200, verified.text
    token = await _token(http, "/customers/login", {"email": EMAIL, "password": PASSWORD})
    return customer_id, token


def _answered(response: httpx.Response) -> bool:
    """The path reached its service: not 405, and no error of the front's own (no such path,
    or the public API's refusal of a call without an API key). A 400 for the empty body is
    the service answering."""
    if response.status_code == 405:
        return False
    return response.status_code == 200 or response.json().get("id") not in ROUTER_ERROR_IDS


async def test_every_documented_path_answers(front: httpx.AsyncClient) -> None:
    admin = await _token(front, "/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
    _, customer = await _customer(front, admin)
    document = (await front.get("/openapi.json")).json()
    paths = sorted(document["paths"])
    unanswered: list[str] = []
    for path in paths:
        assert list(document["paths"][path]) == ["post"]
        for token in (admin, customer):
            response = await front.post(path, json={}, headers=bearer(token))
            if not _answered(response):
                unanswered.append(f"{path}: {response.status_code} {response.text}")
    assert unanswered == []
    assert {
        "/v1/api/keys/generate",
        "/v1/api/keys/list",
        "/v1/api/keys/revoke",
        "/v1/api/keys/roll",
        "/v1/api/keys/import",
        "/v1/api/keys/block",
        "/v1/api/keys/unblock",
        "/v1/api/keys/delete",
        "/v1/api/apis/list",
    } <= set(paths)
    v1_paths = [path for path in paths if path.startswith("/v1/")]
    assert all(path.startswith("/v1/api/") for path in v1_paths), v1_paths


async def test_admins_block_and_unblock_a_customers_key_at_its_paths(
    front: httpx.AsyncClient,
) -> None:
    admin = await _token(front, "/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
    customer_id, customer = await _customer(front, admin)
    generated = await front.post(
        "/v1/api/keys/generate",
        json={"scopes": ["helloworld"], "description": "laptop"},
        headers=bearer(customer),
    )
    assert generated.status_code == 200, generated.text
    key_id = generated.json()["api_key_id"]

    async def status() -> str:
        listed = await front.post("/v1/api/keys/list", json={}, headers=bearer(customer))
        assert listed.status_code == 200, listed.text
        [key] = listed.json()["api_keys"]
        return str(key["status"])

    refused = await front.post(
        "/v1/api/keys/block", json={"key_id": key_id}, headers=bearer(customer)
    )
    assert refused.status_code == 403, refused.text
    assert await status() == "active"

    blocked = await front.post(
        "/v1/api/keys/block",
        json={"user_id": customer_id, "key_id": key_id, "message": "Unpaid invoice"},
        headers=bearer(admin),
    )
    assert blocked.status_code == 200, blocked.text
    assert await status() == "blocked"

    unblocked = await front.post(
        "/v1/api/keys/unblock", json={"user_id": customer_id}, headers=bearer(admin)
    )
    assert unblocked.status_code == 200, unblocked.text
    assert await status() == "active"

    deleted = await front.post(
        "/v1/api/keys/delete", json={"id": customer_id}, headers=bearer(admin)
    )
    assert deleted.status_code == 200, deleted.text
    listed = await front.post("/v1/api/keys/list", json={}, headers=bearer(customer))
    assert listed.json().get("api_keys", []) == []


async def test_the_gateways_own_lookup_has_no_path(front: httpx.AsyncClient) -> None:
    admin = await _token(front, "/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
    document = (await front.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if "resolve" in path.lower()]
    response = await front.post("/v1/ResolveKey", json={"hash": "0" * 64}, headers=bearer(admin))
    assert response.status_code == 404
