"""The customer journey against `m3o serve`, over HTTP and with `m3o.client`.

An admin creates a customer, who finishes signing up with the emailed code; the admin
funds the account; the customer logs in, generates a key, calls helloworld unary and
streaming (over a real websocket), sees usage and the balance change, revokes the key,
and the next call is 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.serving import CODE_SENTENCE, Platform, eventually, serving
from m3o.client import APIError, Client

pytestmark = pytest.mark.e2e

EMAIL = "journey@example.com"
PASSWORD = "a journey password"
FUNDS = 1_000_000  # $1
PROMO = 10_000  # signup.promoCredit's default


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    yield from serving(tmp_path)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _balance(platform: Platform, token: str) -> int:
    return int(_ok(platform.post("/balance/current", {}, token)).get("current_balance", 0))


def _usage_of(platform: Platform, token: str, api: str) -> int:
    usage = _ok(platform.post("/usage/read", {}, token)).get("usage", {})
    records = usage.get(api, {}).get("records", [])
    return sum(int(r.get("requests", 0)) for r in records)


def test_the_customer_journey(platform: Platform) -> None:
    admin = platform.admin_token()
    customer = _ok(platform.post("/customers/create", {"email": EMAIL}, admin))["customer"]

    # The customer finishes the signup: the code comes by email (the local outbox).
    _ok(platform.post("/signup/user", {"email": EMAIL}))
    code = platform.latest_email(EMAIL, "verification", CODE_SENTENCE)
    verified = _ok(
        platform.post("/signup/verify", {"email": EMAIL, "token": code, "secret": PASSWORD})
    )
    assert verified["customerID"] == customer["id"]

    funded = _ok(
        platform.post(
            "/balance/increment",
            {
                "customer_id": customer["id"],
                "delta": FUNDS,
                "reference": "Journey funds",
                "idempotency_key": "journey-funds",
                "visible": True,
            },
            admin,
        )
    )
    assert funded["new_balance"] >= FUNDS

    login = _ok(platform.post("/customers/login", {"email": EMAIL, "password": PASSWORD}))
    token = login["token"]["access_token"]
    # The promo credit arrives once, from the onboarding consumer.
    eventually(lambda: _balance(platform, token) == FUNDS + PROMO)

    apis = _ok(platform.post("/v1/api/apis/list", {}, token))
    assert "helloworld" in apis["names"]
    generated = _ok(
        platform.post(
            "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "journey"}, token
        )
    )
    key, key_id = generated["api_key"], generated["api_key_id"]
    assert key.startswith("m3o_")
    listed = _ok(platform.post("/v1/api/keys/list", {}, token))["api_keys"]
    assert [k["id"] for k in listed] == [key_id]
    assert key not in str(listed)

    # Unary, by hand (curl's view): a free call under the monthly fair-use quota.
    called = httpx.post(
        f"{platform.url}/v1/helloworld/call",
        json={"name": "Alice"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert called.status_code == 200, called.text
    assert called.json() == {"message": "Hello Alice"}
    assert called.headers["X-M3O-Price"] == "free"
    assert called.headers["X-Request-Id"]
    assert int(called.headers["RateLimit-Limit"]) > 0

    # A GET with the request in the query string.
    got = httpx.get(
        f"{platform.url}/v1/helloworld/Call?name=Bob",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    assert got.json() == {"message": "Hello Bob"}

    # Stream is priced; with its free quota removed every streamed call is charged.
    entry = _ok(platform.post("/publicapi/get", {"name": "helloworld"}, admin))["api"]
    price = int({k.lower(): v for k, v in entry["pricing"].items()}["helloworld.stream"])
    assert price > 0
    _ok(
        platform.post(
            "/publicapi/update",
            {"api": {"id": entry["id"], "quotas": {"Helloworld.Stream": 0}}},
            admin,
        )
    )
    before = _balance(platform, token)

    async def with_the_client() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with Client(key, platform.url) as client:
            unary = await client.call("helloworld", "Call", {"name": "Carol"})
            streamed = [
                m
                async for m in client.stream("helloworld", "Stream", {"name": "Dan", "messages": 3})
            ]
            return unary, streamed

    # The catalog change reaches the gateway within a few seconds.
    def charged_stream() -> bool:
        unary, streamed = asyncio.run(with_the_client())
        assert unary == {"message": "Hello Carol"}
        assert streamed == [{"message": "Hello Dan"}] * 3
        return _balance(platform, token) < before

    eventually(charged_stream, seconds=20)
    after = _balance(platform, token)
    assert (before - after) % price == 0

    # Usage shows the calls once the request events are consumed.
    eventually(lambda: _usage_of(platform, token, "helloworld") >= 4)

    # Revoking the key: the next call is 401, on the HTTP API and through the client.
    _ok(platform.post("/v1/api/keys/revoke", {"id": key_id}, token))

    def refused() -> bool:
        response = httpx.post(
            f"{platform.url}/v1/helloworld/call",
            json={"name": "Eve"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        return response.status_code == 401

    eventually(refused, seconds=5)

    async def revoked_call() -> APIError:
        async with Client(key, platform.url) as client:
            with pytest.raises(APIError) as raised:
                await client.call("helloworld", "Call", {"name": "Eve"})
            return raised.value

    error = asyncio.run(revoked_call())
    assert error.code == 401
    assert error.id == "v1"
