"""A gateway killed with SIGKILL mid-burst: what was charged, counted monthly and kept in
the usage history still agree, and never exceed the 200s the client saw.

The platform profile as `test_public_api.py` runs it (with the same helpers): every
service the public API needs as its own `m3o run <service>` process, a fresh PostgreSQL
database, this run's Redis test database. A burst of paid calls goes through gateway A,
which is killed (SIGKILL) while dozens are in flight: some admitted and not answered (the
helloworld process is frozen with SIGSTOP first, so they hold their reservations at the
kill whatever the machine's speed), some answered with their request events still in A's
memory. Gateway B then starts and recovers
A's calls (A's lease is removed first: the 30 s it would take to expire is all that is
skipped). Once the usage consumers have caught up:

    units charged == price x the monthly counter == the history's calls <= the 200s seen.

A call is committed (charged) only once its 200 has been handed over, so a call answered
but not yet committed when A dies is released by B: answered free.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.helloworld import catalog
from m3o.services.usage.counters import TOTAL, monthly_key
from support.backends import REDIS_URL
from support.platform import (
    CALL_PATH,
    SERVICES,
    Api,
    Customer,
    Process,
    assert_no_logged_errors,
    call,
    free_port,
    migrate,
    new_customer,
    platform_env,
    start,
    stop,
    until,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "public-api-admin-password"
PRICE = 7
FUNDS = 1_000_000
CALLS = 400
"""Paid calls in the burst (most of them are cut short by the kill)."""
IN_FLIGHT = 48
KILL_AFTER = 120
"""Answers the client has had when gateway A is killed."""
COUNTERS_PREFIX = "m3o:"
BOOK = COUNTERS_PREFIX + "v1:holds"
STARTUP = 120
"""Seconds a process may take to start (eight start at once on a shared machine)."""


@pytest.mark.timeout(300)
async def test_a_gateway_killed_mid_burst_leaves_charges_counters_and_history_agreeing(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = platform_env(
        database,
        REDIS_URL,
        sockets,
        "kill-test-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="warning",
        M3O_V1__RATE_LIMITS__FREE="100000",
        M3O_V1__KEY_PEPPER="kill-test-key-pepper",
    )
    migrate(env)

    services = [start(name, env, logs) for name in SERVICES]
    survivors: list[Process] = []
    victim: Process | None = None
    # Idle connections go before uvicorn's 5 s keep-alive closes them (no request on a
    # connection the gateway is closing).
    limits = httpx.Limits(
        max_connections=2 * IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2.0
    )
    try:
        for process in services:

            async def listening(process: Process = process) -> bool:
                assert process.popen.poll() is None, process.output()
                return (sockets / f"{process.name}.sock").exists()

            await until(listening, f"{process.name} socket", seconds=STARTUP)
        port_a, port_b = free_port(), free_port()
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        victim = gateway_a = start(
            "gateway-a", {**env, "M3O_SERVER__PORT": str(port_a)}, logs, "gateway"
        )
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def ready(process: Process, url: str) -> bool:
                assert process.popen.poll() is None, process.output()
                return (await client.get(f"{url}/readyz")).status_code == 200

            await until(lambda: ready(gateway_a, url_a), "gateway A ready", seconds=STARTUP)
            api = Api(client, url_a, ADMIN_PASSWORD)

            async def admin_ready() -> bool:
                await api.log_in_admin()
                return True

            await until(admin_ready, "admin account", seconds=STARTUP)
            customer = await paid_helloworld_customer(api, client, url_a)

            upstream = next(process for process in services if process.name == "helloworld")
            statuses, left = await burst_and_kill(
                client, url_a, customer.key, gateway_a, upstream, redis_db
            )

            # A's lease would expire in 30 s; removing it is the same, sooner.
            for lease in redis_db.scan_iter(match=f"{COUNTERS_PREFIX}v1:holds-lease:*"):
                redis_db.delete(lease)
            survivor = start("gateway-b", {**env, "M3O_SERVER__PORT": str(port_b)}, logs, "gateway")
            survivors.append(survivor)
            await until(lambda: ready(survivor, url_b), "gateway B ready", seconds=STARTUP)
            api = Api(client, url_b, ADMIN_PASSWORD)
            await api.log_in_admin()

            books = Books(api, redis_db, customer.id)
            try:
                await until(books.agree, "charges, monthly counter and history agreeing", 30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: last read {books.last}, kill left {left}") from None
            charged, monthly, history = await books.read()

        served = statuses.count(200)
        assert charged == PRICE * monthly == PRICE * history, (charged, monthly, history, left)
        assert 0 < monthly <= served, (monthly, served, statuses)
        assert left[0] > 0, "the kill left no call unfinished: the test proved nothing"
        assert redis_db.hlen(BOOK) == 0
    finally:
        if victim is not None:
            if victim.popen.poll() is None:
                victim.popen.kill()
            victim.popen.wait()
            victim.stream.close()
        problems = stop(survivors) + stop(list(reversed(services)))
    assert not problems, "\n".join(problems)
    assert_no_logged_errors([*services, *survivors])


async def paid_helloworld_customer(api: Api, client: httpx.AsyncClient, url: str) -> Customer:
    """Helloworld published with Helloworld.Call at ``PRICE`` and no free calls; a customer
    with ``FUNDS`` and a key, once the gateway prices the call."""
    published = await api.as_admin("/publicapi/publish", message_to_dict(catalog.publish_request()))
    await api.as_admin(
        "/publicapi/update",
        {
            "api": {
                "id": str(published["api"]["id"]),
                "pricing": {"Helloworld.Call": PRICE, "Helloworld.Stream": catalog.STREAM_PRICE},
                "quotas": {"Helloworld.Call": 0, "Helloworld.Stream": 0},
            }
        },
    )
    # The probe pays for itself: the monthly free quota only covers free endpoints.
    probe = await new_customer(api, "probe", FUNDS)

    async def priced() -> bool:
        outcome = await call(client, [url], 0, probe.key)
        return bool(outcome.price == str(PRICE))

    await until(priced, "the new price on gateway A", seconds=10)
    return await new_customer(api, "payer", FUNDS)


async def burst_and_kill(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    victim: Process,
    upstream: Process,
    counters: redis.Redis,
) -> tuple[list[int], tuple[int, int]]:
    """``CALLS`` paid calls, ``IN_FLIGHT`` at a time; once ``KILL_AFTER`` have been
    answered, the upstream is frozen (SIGSTOP) so admitted calls keep their reservations,
    and the gateway is killed once some do. The status of each call (0: no answer), and
    the holds the kill left: all, and those served (their event not published yet)."""
    statuses: list[int] = []
    answered = asyncio.Event()
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with gate:
            try:
                response = await client.post(
                    f"{url}{CALL_PATH}",
                    json={"name": f"n{n}"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            statuses.append(status)
            if len(statuses) >= KILL_AFTER:
                answered.set()

    async def kill() -> tuple[int, int]:
        await answered.wait()
        upstream.popen.send_signal(signal.SIGSTOP)
        try:
            # With the upstream frozen an admitted call cannot be answered, so its hold
            # stays until the kill; the deadline only keeps a broken gateway from hanging
            # the test (which then fails on ``left`` below).
            deadline = time.monotonic() + 60
            while counters.hlen(BOOK) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            victim.popen.send_signal(signal.SIGKILL)
            assert victim.popen.wait(timeout=10) == -signal.SIGKILL
        finally:
            upstream.popen.send_signal(signal.SIGCONT)
        left = counters.hvals(BOOK)
        return len(left), sum(1 for record in left if b'"s"' in record)

    calls = asyncio.gather(*(one(n) for n in range(CALLS)))
    left = await kill()
    await calls
    assert statuses.count(200) >= KILL_AFTER - IN_FLIGHT, statuses
    return statuses, left


class Books:
    """The customer's charges, monthly counter and history, as the platform reports them."""

    def __init__(self, api: Api, counters: redis.Redis, customer_id: str) -> None:
        self._api = api
        self._counters = counters
        self._customer = customer_id
        self.last: tuple[int, int, int] | None = None
        """What :meth:`agree` read last: (charged, monthly, history)."""

    async def read(self) -> tuple[int, int, int]:
        """(units charged: funds less the balance, the monthly ``total`` counter, the calls
        in the usage history)."""
        current = await self._api.as_admin("/balance/current", {"customer_id": self._customer})
        charged = FUNDS - int(current.get("current_balance", 0))
        key = COUNTERS_PREFIX + monthly_key(self._customer, TOTAL, datetime.now(UTC))
        monthly = int(self._counters.get(key) or 0)
        read = await self._api.as_admin("/usage/read", {"customer_id": self._customer})
        records = read.get("usage", {}).get("helloworld", {}).get("records", [])
        history = sum(int(record.get("requests", 0)) for record in records)
        return charged, monthly, history

    async def agree(self) -> bool:
        started = time.monotonic()
        self.last = charged, monthly, history = await self.read()
        assert time.monotonic() - started < 10
        return monthly > 0 and charged == PRICE * monthly == PRICE * history
