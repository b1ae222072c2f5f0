"""DeleteData over the whole local platform in process, on SQLite and PostgreSQL: a
customer with data in every service (signup, emails, customers, auth, keys, projects,
calls and usage, balance, the Stripe mapping, billing) has none of it left anywhere
afterwards, and the services say so through their own endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from m3o.platform.local import LocalPlatform
from m3o.platform.services import SERVICES
from m3o.services.admin import tables as admin_tables
from support.platform import local_platform
from support.stripe_fake import StripeFake

ADMIN_PASSWORD = "admin-delete-data-password"
EMAIL = "leaver@example.com"
PASSWORD = "a long enough secret"
DEADLINE = 30.0
"""Generous: background consumers on a busy 2-core machine."""


@pytest.fixture(params=["sqlite", "postgresql"])
async def platform(
    request: pytest.FixtureRequest, tmp_path: Path, stripe_fake: StripeFake
) -> AsyncIterator[LocalPlatform]:
    env = {
        "M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_STRIPE__API_KEY": stripe_fake.api_key,
        "M3O_STRIPE__API_BASE": stripe_fake.base_url,
        "M3O_STRIPE__SUCCESS_URL": "http://console.test/paid",
        "M3O_STRIPE__CANCEL_URL": "http://console.test/cancelled",
    }
    async with local_platform(tmp_path, env, request.param) as opened:
        yield opened


class Front:
    """Platform API calls through the in-process HTTP front."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.admin = ""

    async def call(self, path: str, body: dict[str, Any], token: str = "") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(path, json=body, headers=headers)

    async def ok(self, path: str, body: dict[str, Any], token: str = "") -> dict[str, Any]:
        response = await self.call(path, body, token)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    async def emails_to(self, address: str) -> list[dict[str, Any]]:
        listed = await self.ok("/emails/listOutbox", {"to": address, "limit": 100}, self.admin)
        return list(listed.get("emails", []))


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


KEPT = frozenset({"auth_sessions", "projects_accounts"})
"""Rows kept on purpose, holding nothing but ids: auth's revoked sessions stay until their
tokens expire (hourly purge), so a token of the deleted customer stays refused; projects
marks the account deleted, so no default project is made for it afterwards."""


async def leftovers(platform: LocalPlatform, values: tuple[str, ...]) -> list[str]:
    """Every row of a service's table (admin's own and ``KEPT`` excepted) that mentions
    ``values``."""
    found: list[str] = []
    async with platform.engine.connect() as conn:
        for definition in SERVICES:
            if definition.metadata is None or definition.name == "admin":
                continue
            for table in definition.metadata.sorted_tables:
                if table.name in KEPT:
                    continue
                for row in (await conn.execute(select(table))).all():
                    text = repr(tuple(row))
                    if any(value in text for value in values):
                        found.append(f"{table.name}: {text[:200]}")
    return found


@dataclass(frozen=True)
class Leaver:
    id: str
    token: str
    key: str


async def customer_with_data_everywhere(front: Front, platform: LocalPlatform) -> Leaver:
    """A customer with data in every service that holds some."""
    # signup: a code by email, verified; the promo credit and the welcome email follow
    await front.ok("/signup/user", {"email": EMAIL})
    [sent] = await front.emails_to(EMAIL)
    code = sent["text"].split("signup form:")[1].split()[0]
    verified = await front.ok("/signup/verify", {"email": EMAIL, "token": code, "secret": PASSWORD})
    customer_id = verified["customerID"]
    customer = verified["authToken"]["access_token"]

    async def onboarded() -> bool:
        current = await front.ok("/balance/current", {"customer_id": customer_id}, front.admin)
        return int(current.get("current_balance", 0)) > 0 and len(await front.emails_to(EMAIL)) >= 2

    await until(onboarded, "the promo credit and the welcome email")

    # a key, a call through it, usage counted
    generated = await front.ok(
        "/v1/api/keys/generate", {"scopes": ["*"], "description": "k"}, customer
    )
    key = generated["api_key"]
    called = await front.call("/v1/helloworld/call", {"name": "Ann"}, key)
    assert called.status_code == 200, called.text

    async def counted() -> bool:
        usage = await front.ok("/usage/read", {"customer_id": customer_id}, front.admin)
        return bool(usage.get("usage"))

    await until(counted, "the call's usage")

    # a credit, a Stripe customer (Checkout), a reset token
    credit = {
        "customer_id": customer_id,
        "delta": 5000,
        "reference": "credit",
        "idempotency_key": "c1",
    }
    await front.ok("/balance/increment", credit, front.admin)
    await front.ok("/billing/createCheckoutSession", {"amount": 2000}, customer)
    await front.ok("/signup/recover", {"email": EMAIL})
    assert await leftovers(platform, (customer_id, EMAIL))  # the data is there
    return Leaver(customer_id, customer, key)


async def assert_erased(front: Front, platform: LocalPlatform, leaver: Leaver) -> None:
    """No table of any service mentions the customer once its consumers are done, and no
    service returns any of it."""

    async def erased() -> bool:
        return not await leftovers(platform, (leaver.id, EMAIL))

    await until(erased, "erasure")
    read = await front.call("/customers/read", {"id": leaver.id}, front.admin)
    assert read.status_code == 404, read.text
    assert await front.emails_to(EMAIL) == []
    usage = await front.ok("/usage/read", {"customer_id": leaver.id}, front.admin)
    assert not usage.get("usage")
    login = await front.call("/customers/login", {"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 401, login.text

    async def key_refused() -> bool:
        # A gateway trusts a key record it read for v1.key_cache_ttl (1 s), as after a
        # revoke: the deleted key stops working within that.
        called = await front.call("/v1/helloworld/call", {"name": "Ann"}, leaver.key)
        assert called.status_code in (200, 401), called.text
        return called.status_code == 401

    await until(key_refused, "the deleted customer's key refused")
    current = await front.ok("/balance/current", {"customer_id": leaver.id}, front.admin)
    assert int(current.get("current_balance", 0)) == 0  # (reading makes an empty account)


@asynccontextmanager
async def served(platform: LocalPlatform) -> AsyncIterator[Front]:
    """The platform's HTTP front in process, with an admin logged in."""
    transport = httpx.ASGITransport(app=platform.app)
    async with (
        platform.app.router.lifespan_context(platform.app),
        httpx.AsyncClient(transport=transport, base_url="http://m3o.test") as client,
    ):
        front = Front(client)
        token = await front.ok("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
        front.admin = token["token"]["access_token"]
        yield front


async def test_delete_data_leaves_nothing_of_the_customer_anywhere(
    platform: LocalPlatform,
) -> None:
    async with served(platform) as front:
        leaver = await customer_with_data_everywhere(front, platform)

        tenant = {"tenant_id": f"micro/{leaver.id}"}
        answer = await front.ok("/admin/deleteData", tenant, front.admin)
        assert answer["services"] == [
            "balance",
            "billing",
            "customers",
            "emails",
            "mailchimp",
            "projects",
            "signup",
            "stripe",
            "usage",
            "v1",
        ]
        await assert_erased(front, platform, leaver)

        async def asked_again() -> bool:  # nobody is asked; once its own consumer is done
            again = await front.call("/admin/deleteData", tenant, front.admin)
            return again.status_code == 200 and again.json() == answer

        await until(asked_again, "DeleteData again")
        async with platform.engine.connect() as conn:  # admin forgot the address too
            kept = [
                repr(tuple(row))
                for table in admin_tables.metadata.sorted_tables
                for row in (await conn.execute(select(table))).all()
            ]
        assert kept
        assert not [row for row in kept if EMAIL in row]


@pytest.mark.parametrize("who", ["admin", "customer"])
async def test_deleting_a_customer_deletes_its_data_everywhere(
    platform: LocalPlatform, who: str
) -> None:
    async with served(platform) as front:
        leaver = await customer_with_data_everywhere(front, platform)
        token = front.admin if who == "admin" else leaver.token
        await front.ok("/customers/delete", {"id": leaver.id}, token)
        await assert_erased(front, platform, leaver)
