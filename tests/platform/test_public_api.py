"""The public API in the platform profile: three gateway processes, exact limits.

Every service the public API needs runs as its own `m3o run <service>` process over unix
sockets, against a fresh PostgreSQL database and Redis database 12; three `m3o run gateway`
processes serve HTTP on three ports with a low rate limit, a small monthly fair-use quota
and a key pepper. Hundreds of concurrent calls, spread over the three gateways, then show
that admission is exact across processes:

(a) a free endpoint: exactly the fair-use quota's worth of calls are ``free``, then each
    costs 1 unit until the balance is gone; nothing more is admitted;
(b) a priced endpoint with a per-endpoint free quota: exactly the quota's worth cost ``0``,
    then calls are charged until the balance cannot pay another (admitted x price <= funds);
    the rest are 403 ``Request blocked. Insufficient credit``;
(c) the rate limit: a burst well above it admits no more than the limit per one-second
    window across the three gateways, and the rest are 429 with ``Retry-After``.

Afterwards the debits are flushed to the ledger: each balance is its funds less what its
calls were charged, the ledger sums to it, and `m3o balance check` finds no difference.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import redis

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.helloworld import catalog
from support.backends import redis_url
from support.platform import (
    SERVICES,
    Api,
    Customer,
    Outcome,
    Process,
    admin_api,
    assert_balances_check,
    assert_no_logged_errors,
    call,
    free_port,
    listening,
    migrate,
    new_customer,
    platform_env,
    ready,
    start,
    stop,
    until,
)

pytestmark = pytest.mark.e2e

REDIS_URL = redis_url(12)
ADMIN_PASSWORD = "public-api-admin-password"
GATEWAYS = 3

RATE_LIMIT = 40
"""Calls per second per project (the free tier's ``v1.rate-limits``)."""
FAIR_USE = 50
"""Monthly free calls to free endpoints (the free tier's ``usage.quotas``)."""
BURST = 5 * RATE_LIMIT
"""Calls fired at once: more than the limit on each gateway on its own."""

# (a) the free endpoint: after the fair-use quota, calls cost 1 unit each.
FUNDS_A = 30
# (b) Helloworld.Call priced, with a per-endpoint free quota.
PRICE = 7
ENDPOINT_FREE = 10
PAID_CALLS = 20
FUNDS_B = PRICE * PAID_CALLS + PRICE // 2  # not a multiple of the price: 3 units stay
# (c) and the probe that watches for the catalog change: enough for everything.
PLENTY = 1_000_000

INSUFFICIENT_CREDIT = "Request blocked. Insufficient credit"


# --- the public API -------------------------------------------------------------------------


async def burst(
    client: httpx.AsyncClient, urls: list[str], key: str, count: int = BURST
) -> list[Outcome]:
    """``count`` calls at once, round robin over the gateways."""
    return list(
        await asyncio.gather(*(call(client, urls, i % len(urls), key) for i in range(count)))
    )


async def until_refused(client: httpx.AsyncClient, urls: list[str], key: str) -> list[Outcome]:
    """Bursts, one rate window apart, until one admits nothing and is refused for credit."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + 20
    while True:
        fired = await burst(client, urls, key)
        outcomes += fired
        statuses = Counter(o.status for o in fired)
        if statuses[200] == 0 and statuses[403] > 0:
            return outcomes
        assert time.monotonic() < deadline, f"still admitting after 20 s: {statuses}"
        await asyncio.sleep(0.3)


def assert_refusals(outcomes: list[Outcome], *, credit: bool) -> None:
    """Every call not admitted was refused by the rate limit (or, if ``credit``, for
    credit), with the spec's error."""
    for outcome in outcomes:
        if outcome.status in (200, 429):
            assert outcome.rate_limit == RATE_LIMIT, outcome
        if outcome.status == 200:
            assert outcome.price, outcome
        elif outcome.status == 429:
            assert (outcome.error_id, outcome.detail) == ("v1.blocked", "Too Many Requests")
            assert outcome.retry_after is not None
            assert int(outcome.retry_after) >= 1
        else:
            assert credit, outcome
            assert (outcome.status, outcome.error_id, outcome.detail) == (
                403,
                "v1.blocked",
                INSUFFICIENT_CREDIT,
            ), outcome


def assert_rate_windows(outcomes: list[Outcome]) -> int:
    """No rate window admitted more than the limit; returns how many were admitted.

    Windows start at their first hit and last one second, so the calls of a burst that took
    ``d`` seconds (first sent to last answered) fall into at most ``floor(d) + 1`` windows;
    within one window each admitted call has its own place (1..limit).
    """
    duration = max(o.received for o in outcomes) - min(o.sent for o in outcomes)
    windows = math.floor(duration) + 1
    admitted = [o for o in outcomes if o.status != 429]
    assert all(o.status == 200 for o in admitted), Counter(o.status for o in outcomes)
    assert len(admitted) <= RATE_LIMIT * windows, (len(admitted), duration)
    places = Counter(o.used for o in admitted)
    assert all(place is not None and 1 <= place <= RATE_LIMIT for place in places), places
    assert max(places.values()) <= windows, places
    if windows == 1:
        # All of a burst well above the limit in one window: exactly the limit admitted.
        assert len(admitted) == RATE_LIMIT, Counter(o.status for o in outcomes)
    return len(admitted)


# --- the test -------------------------------------------------------------------------------


async def test_three_gateways_admit_exactly_what_the_limits_and_the_balance_allow(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"  # kept by pytest after a failure
    logs.mkdir()
    ports = [free_port() for _ in range(GATEWAYS)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    env = platform_env(
        database,
        REDIS_URL,
        sockets,
        "public-api-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="warning",
        M3O_V1__RATE_LIMITS__FREE=str(RATE_LIMIT),
        M3O_V1__KEY_PEPPER="public-api-key-pepper",
        M3O_USAGE__QUOTAS__FREE=str(FAIR_USE),
        M3O_BALANCE__FLUSH_INTERVAL="1s",
    )
    migrate(env)

    services = [start(name, env, logs) for name in SERVICES]
    gateways: list[Process] = []
    # Every call on a connection of its own: no burst can send a request on a kept-alive
    # connection the gateway is closing (dropping idle ones after 2 s, before uvicorn's 5 s
    # keep-alive, still left one httpx.ReadError mid-burst in a few runs).
    limits = httpx.Limits(max_connections=2 * BURST, max_keepalive_connections=0)
    try:
        await listening(services, sockets, 90)
        gateways = [
            start(f"gateway{i}", {**env, "M3O_SERVER__PORT": str(port)}, logs, "gateway")
            for i, port in enumerate(ports)
        ]
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            for process, url in zip(gateways, urls, strict=True):
                await ready(client, process, url, 90)
            api = await admin_api(client, urls[0], ADMIN_PASSWORD, 90)
            await scenarios(api, client, urls)

        # Every balance equals its ledger (the flush has run: check_money waited for it).
        assert_balances_check(env, workdir)
    finally:
        # The gateways first (they publish their last request events), then the services.
        problems = stop(gateways) + stop(list(reversed(services)))
    assert not problems, "\n".join(problems)
    assert_no_logged_errors([*services, *gateways])


async def scenarios(api: Api, client: httpx.AsyncClient, urls: list[str]) -> None:
    # Helloworld as the local profile publishes it: Call free, Stream priced.
    published = await api.as_admin("/publicapi/publish", message_to_dict(catalog.publish_request()))
    entry_id = str(published["api"]["id"])
    assert published["api"]["upstream"]["address"] == "local:helloworld"

    alice = await new_customer(api, "alice", FUNDS_A)
    bob = await new_customer(api, "bob", FUNDS_B)
    carol = await new_customer(api, "carol", PLENTY)
    probe = await new_customer(api, "probe", PLENTY)
    calls: dict[str, list[Outcome]] = {}

    # (a) The free endpoint: the fair-use quota, then 1 unit a call, then nothing.
    calls[alice.id] = outcomes = await until_refused(client, urls, alice.key)
    assert_refusals(outcomes, credit=True)
    prices = Counter(o.price for o in outcomes if o.status == 200)
    assert prices == {"free": FAIR_USE, "1": FUNDS_A}, prices

    # (b) Helloworld.Call priced, with a per-endpoint free quota; every gateway sees it
    # once the probe's calls there are priced by the new entry.
    await api.as_admin(
        "/publicapi/update",
        {
            "api": {
                "id": entry_id,
                "pricing": {"Helloworld.Call": PRICE, "Helloworld.Stream": catalog.STREAM_PRICE},
                "quotas": {"Helloworld.Call": ENDPOINT_FREE, "Helloworld.Stream": 0},
            }
        },
    )
    calls[probe.id] = []
    for gateway in range(len(urls)):

        async def updated(gateway: int = gateway) -> bool:
            outcome = await call(client, urls, gateway, probe.key)
            calls[probe.id].append(outcome)
            return outcome.price in ("0", str(PRICE))

        await until(updated, f"the new prices on gateway {gateway}", seconds=10)
    assert all(o.status == 200 for o in calls[probe.id])

    calls[bob.id] = outcomes = await until_refused(client, urls, bob.key)
    assert_refusals(outcomes, credit=True)
    prices = Counter(o.price for o in outcomes if o.status == 200)
    assert prices == {"0": ENDPOINT_FREE, str(PRICE): PAID_CALLS}, prices
    assert sum(o.charge for o in outcomes) <= FUNDS_B

    # (c) The rate limit across the three gateways: two bursts, a window apart.
    calls[carol.id] = first = await burst(client, urls, carol.key)
    assert_refusals(first, credit=False)
    assert_rate_windows(first)
    await asyncio.sleep(1.1)
    second = await burst(client, urls, carol.key)
    calls[carol.id] += second
    assert_refusals(second, credit=False)
    assert_rate_windows(second)

    await check_money(api, [alice, bob, carol, probe], calls)


async def check_money(
    api: Api, customers: list[Customer], calls: Mapping[str, list[Outcome]]
) -> None:
    """Each balance is its funds less its charges, the ledger (once the debits are flushed)
    sums to it, and usage counted each admitted call once."""
    for customer in customers:
        outcomes = calls[customer.id]
        charged = sum(o.charge for o in outcomes if o.status == 200)
        expected = customer.funds - charged
        current = await api.as_admin("/balance/current", {"customer_id": customer.id})
        assert current.get("current_balance", 0) == expected, (customer, charged)

        async def flushed(customer: Customer = customer, expected: int = expected) -> bool:
            listed = await api.as_admin(
                "/balance/listAdjustments", {"customer_id": customer.id, "limit": 1000}
            )
            return sum(int(a.get("delta", 0)) for a in listed.get("adjustments", [])) == expected

        await until(flushed, f"the ledger of {customer.id} sums to {expected}", seconds=15)
        listed = await api.as_admin(
            "/balance/listAdjustments", {"customer_id": customer.id, "limit": 1000}
        )
        usage = sum(
            int(a.get("delta", 0))
            for a in listed["adjustments"]
            if a.get("reference") == "API usage"
        )
        assert usage == -charged

        admitted = sum(1 for o in outcomes if o.status == 200)
        monthly = await api.as_admin("/usage/readMonthlyTotal", {"customer_id": customer.id})
        assert monthly.get("requests", 0) == admitted
