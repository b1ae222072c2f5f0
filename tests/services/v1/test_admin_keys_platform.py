"""Key management with an admin token over the whole local platform in process (the real
projects service), on SQLite and PostgreSQL: an admin has no project, so GenerateKey and
ListKeys ask for one by name and answer 400 without it, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from m3o.platform.local import LocalPlatform, open_local
from support.backends import POSTGRES_URL
from support.password_hash import CHEAP_PASSWORD_HASH
from support.platform import fresh_database

ADMIN_PASSWORD = "admin-keys-password"
EMAIL = "ann@example.com"
PASSWORD = "a long enough secret"
NO_PROJECT = "Missing project_id field: an admin has no project of their own"


@pytest.fixture(params=["sqlite", "postgresql"])
async def front(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The platform's HTTP front in process."""
    env = {"M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD, **CHEAP_PASSWORD_HASH}
    if request.param == "sqlite":
        platform = await open_local(tmp_path, env)
        async with served(platform) as client:
            yield client
        return
    assert POSTGRES_URL
    async with fresh_database() as url:
        platform = await open_local(tmp_path, {**env, "M3O_DATABASE__URL": url})
        async with served(platform) as client:
            yield client


@asynccontextmanager
async def served(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    """``platform``'s front in process; the platform is closed afterwards."""
    transport = httpx.ASGITransport(app=platform.app)
    try:
        async with (
            platform.app.router.lifespan_context(platform.app),
            httpx.AsyncClient(transport=transport, base_url="http://m3o.test") as client,
        ):
            yield client
    finally:
        await platform.close()


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], token: str, status: int = 200
) -> dict[str, Any]:
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status, f"{path}: {response.status_code} {response.text}"
    answer: dict[str, Any] = response.json()
    return answer


async def admin_and_customer(client: httpx.AsyncClient) -> tuple[str, str, str]:
    """An admin token, and a customer's id and token."""
    login = await client.post("/auth/token", json={"id": "admin", "secret": ADMIN_PASSWORD})
    assert login.status_code == 200, login.text
    admin = login.json()["token"]["access_token"]
    customer = (await post(client, "/customers/create", {"email": EMAIL}, admin))["customer"]
    account = {
        "id": customer["id"],
        "type": "customer",
        "scopes": ["customer"],
        "name": EMAIL,
        "secret": PASSWORD,
    }
    await post(client, "/auth/generate", account, admin)
    await post(client, "/customers/markVerified", {"id": customer["id"]}, admin)
    logged_in = await client.post("/customers/login", json={"email": EMAIL, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    return admin, customer["id"], logged_in.json()["token"]["access_token"]


async def test_an_admin_manages_the_keys_of_a_project_they_name(
    front: httpx.AsyncClient,
) -> None:
    admin, customer_id, customer = await admin_and_customer(front)
    # The customer's first list makes their default project (id = theirs).
    assert await post(front, "/v1/api/keys/list", {}, customer) == {}
    key = {"scopes": ["helloworld"], "description": "made by support"}

    for path, body in (("/v1/api/keys/generate", key), ("/v1/api/keys/list", {})):
        refused = await post(front, path, body, admin, status=400)
        assert refused["detail"] == NO_PROJECT, path
    unknown = await post(front, "/v1/api/keys/generate", {**key, "project_id": "nope"}, admin, 404)
    assert unknown["detail"] == "Project not found"
    unknown = await post(front, "/v1/api/keys/list", {"project_id": "nope"}, admin, 404)
    assert unknown["detail"] == "Project not found"

    for_customer = {**key, "project_id": customer_id}
    generated = await post(front, "/v1/api/keys/generate", for_customer, admin)
    called = await front.post(
        "/v1/helloworld/call",
        json={"name": "Ann"},
        headers={"Authorization": f"Bearer {generated['api_key']}"},
    )
    assert called.status_code == 200, called.text
    [as_admin] = (await post(front, "/v1/api/keys/list", {"project_id": customer_id}, admin))[
        "api_keys"
    ]
    [as_customer] = (await post(front, "/v1/api/keys/list", {}, customer))["api_keys"]
    assert as_admin["id"] == as_customer["id"] == generated["api_key_id"]
    assert as_customer["project_id"] == customer_id

    await post(front, "/v1/api/keys/revoke", {"id": generated["api_key_id"]}, admin)
    assert await post(front, "/v1/api/keys/list", {}, customer) == {}
