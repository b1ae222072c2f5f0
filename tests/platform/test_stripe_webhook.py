"""Stripe's retries against the platform profile: one charge credited once.

Every service the webhook needs runs as its own `m3o run` process on a fresh PostgreSQL
database and this run's Redis database, with the local fake of Stripe's API in the test
process. The stripe service runs twice, each behind a gateway of its own (gateway B finds
stripe B's socket where A finds A's; the other services' sockets are shared). Stripe's
``charge.succeeded`` for a Checkout top-up is then delivered 100 times, 20 at once,
alternately to both gateways, as Stripe does when it does not hear back in time:

    every delivery is answered 200, the balance is credited once, and
    `m3o balance check` finds every balance equal to its ledger.

A second top-up, delivered once afterwards, is credited too: once it is in the ledger,
any late duplicate of the first (relayed from either process's outbox) would be as well.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from m3o.services.balance.settings import UNITS_PER_CENT
from support.backends import REDIS_URL
from support.platform import (
    CATALOG,
    PASSWORD,
    Api,
    Process,
    admin_api,
    assert_balances_check,
    assert_no_logged_errors,
    free_port,
    migrate,
    platform_env,
    ready,
    start,
    stop,
    until,
)
from support.stripe_fake import StripeFake, event_payload, sign_webhook

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "stripe-webhook-admin-password"
SIGNING_SECRET = "whsec_platform_profile_secret"
SHARED = ("auth", "customers", "balance", CATALOG)
DELIVERIES = 100
AT_ONCE = 20
TOP_UP = 2_000  # cents
SECOND_TOP_UP = 3_000
STARTUP = 120
"""Seconds a process may take to start (several start at once on a shared machine)."""


@pytest.mark.timeout(300)
async def test_a_charge_delivered_100_times_to_two_processes_is_credited_once(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path, stripe_fake: StripeFake
) -> None:
    shared, own = workdir / "a", workdir / "b"
    shared.mkdir()
    own.mkdir()
    for name in SHARED:  # B reaches the shared services through links to their sockets
        (own / f"{name}.sock").symlink_to(shared / f"{name}.sock")
    logs = tmp_path / "logs"
    logs.mkdir()
    env = platform_env(
        database,
        REDIS_URL,
        shared,
        "stripe-webhook-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="warning",
        M3O_STRIPE__API_KEY=stripe_fake.api_key,
        M3O_STRIPE__SIGNING_SECRET=SIGNING_SECRET,
        M3O_STRIPE__API_BASE=stripe_fake.base_url,
        M3O_STRIPE__SUCCESS_URL="http://console.test/paid",
        M3O_STRIPE__CANCEL_URL="http://console.test/cancelled",
    )
    env_b = {**env, "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{own}/{{service}}.sock"}
    migrate(env)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    services = [start(name, env, logs) for name in SHARED]
    services += [start("stripe-a", env, logs, "stripe"), start("stripe-b", env_b, logs, "stripe")]
    gateways: list[Process] = []
    try:
        for process, socket in zip(
            services,
            [*(shared / f"{n}.sock" for n in SHARED), shared / "stripe.sock", own / "stripe.sock"],
            strict=True,
        ):

            async def listening(process: Process = process, socket: Path = socket) -> bool:
                assert process.popen.poll() is None, process.output()
                return socket.exists()

            await until(listening, f"{process.name} socket", seconds=STARTUP)
        gateways = [
            start(f"gateway-{side}", {**side_env, "M3O_SERVER__PORT": str(port)}, logs, "gateway")
            for side, side_env, port in (("a", env, ports[0]), ("b", env_b, ports[1]))
        ]
        async with httpx.AsyncClient(timeout=60) as client:
            for process, url in zip(gateways, urls, strict=True):
                await ready(client, process, url, STARTUP)
            api = await admin_api(client, urls[0], ADMIN_PASSWORD, STARTUP)
            customer_id, token = await _customer(api)

            first = await _paid_checkout(api, stripe_fake, token, TOP_UP)
            statuses = await _deliver_many(client, urls, first)
            assert statuses == [200] * DELIVERIES, sorted(set(statuses))
            await _until_credited(api, customer_id, [TOP_UP])

            second = await _paid_checkout(api, stripe_fake, token, SECOND_TOP_UP)
            assert (await _deliver(client, urls[1], second)).status_code == 200
            await _until_credited(api, customer_id, [TOP_UP, SECOND_TOP_UP])
    finally:
        problems = stop(gateways) + stop(list(reversed(services)))
    assert not problems, "\n".join(problems)

    assert_balances_check(env, workdir)
    assert_no_logged_errors([*services, *gateways])


async def _customer(api: Api) -> tuple[str, str]:
    """A verified customer with a password: their id and access token."""
    email = "payer@example.com"
    created = await api.as_admin("/customers/create", {"email": email})
    customer_id = str(created["customer"]["id"])
    await api.as_admin(
        "/auth/generate",
        {
            "id": customer_id,
            "type": "customer",
            "scopes": ["customer"],
            "name": email,
            "secret": PASSWORD,
        },
    )
    await api.as_admin("/customers/markVerified", {"id": customer_id})
    login = await api.post("/customers/login", {"email": email, "password": PASSWORD})
    return customer_id, str(login["token"]["access_token"])


async def _paid_checkout(api: Api, stripe: StripeFake, token: str, cents: int) -> dict[str, Any]:
    """A Checkout top-up of ``cents`` the customer paid: its ``charge.succeeded`` event."""
    session = await api.post("/stripe/createCheckoutSession", {"amount": cents}, token)
    stripe.complete_checkout(session["id"])
    charges = stripe.events_of("charge.succeeded")
    return charges[-1]


async def _deliver(client: httpx.AsyncClient, url: str, event: dict[str, Any]) -> httpx.Response:
    payload = event_payload(event)
    return await client.post(
        f"{url}/stripe/webhook",
        content=payload,
        headers={
            "Stripe-Signature": sign_webhook(payload, SIGNING_SECRET),
            "Content-Type": "application/json",
        },
    )


async def _deliver_many(
    client: httpx.AsyncClient, urls: list[str], event: dict[str, Any]
) -> list[int]:
    """``event`` delivered ``DELIVERIES`` times, ``AT_ONCE`` at a time, to each gateway in
    turn; the status of each delivery."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(n: int) -> int:
        async with gate:
            return (await _deliver(client, urls[n % len(urls)], event)).status_code

    return list(await asyncio.gather(*(one(n) for n in range(DELIVERIES))))


async def _until_credited(api: Api, customer_id: str, top_ups: list[int]) -> None:
    """Wait for the ledger to hold exactly ``top_ups`` (in cents) and the balance their sum."""
    expected = [cents * UNITS_PER_CENT for cents in top_ups]
    last: tuple[int, list[int]] | None = None

    async def credited() -> bool:
        nonlocal last
        current = await api.as_admin("/balance/current", {"customer_id": customer_id})
        listed = await api.as_admin("/balance/listAdjustments", {"customer_id": customer_id})
        deltas = [int(entry["delta"]) for entry in listed.get("adjustments", [])]
        last = int(current.get("current_balance", 0)), deltas
        assert len(deltas) <= len(expected), f"credited more than once: {deltas}"
        return last == (sum(expected), expected)

    try:
        await until(credited, "the credit", seconds=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last read {last}") from None
