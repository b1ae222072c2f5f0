"""A gateway killed with SIGKILL mid-burst: what was charged, counted monthly and kept in
the usage history still agree, and never exceed the 200s the client saw.

The platform profile as `test_public_api.py` runs it (with the same helpers): every
service the public API needs as its own `m3o run <service>` process, a fresh PostgreSQL
database, this run's Redis test database. A burst of paid calls goes through gateway A,
which is killed (SIGKILL) while dozens are in flight: some admitted and not answered (the
helloworld process is frozen with SIGSTOP first, so they hold their reservations at the
kill whatever the machine's speed), some answered with their request events still in A's
memory. Gateway B then starts and recovers A's calls at its first sweep after start, once
A's lease has been missing at two sweeps (A's lease is removed first: the 30 s it would
take to expire is all that is skipped). Once the usage consumers have caught up:

    units charged == price x the monthly counter == the history's calls <= the 200s seen.

A call is committed (charged) only once its 200 has been handed over, so a call answered
but not yet committed when A dies is released by B: answered free.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis

from support.backends import REDIS_URL
from support.paid_calls import (
    COUNTERS_PREFIX,
    HOLDS,
    Books,
    burst,
    paid_helloworld_customer,
)
from support.platform import (
    SERVICES,
    Api,
    Process,
    admin_api,
    assert_no_logged_errors,
    free_port,
    listening,
    migrate,
    platform_env,
    ready,
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
        await listening(services, sockets, STARTUP)
        port_a, port_b = free_port(), free_port()
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        victim = gateway_a = start(
            "gateway-a", {**env, "M3O_SERVER__PORT": str(port_a)}, logs, "gateway"
        )
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await ready(client, gateway_a, url_a, STARTUP)
            api = await admin_api(client, url_a, ADMIN_PASSWORD, STARTUP)
            customer = await paid_helloworld_customer(api, client, url_a, price=PRICE, funds=FUNDS)

            upstream = next(process for process in services if process.name == "helloworld")
            statuses, left = await burst_and_kill(
                client, url_a, customer.key, gateway_a, upstream, redis_db
            )

            # A's lease would expire in 30 s; removing it is the same, sooner.
            for lease in redis_db.scan_iter(match=f"{COUNTERS_PREFIX}v1:holds-lease:*"):
                redis_db.delete(lease)
            survivor = start("gateway-b", {**env, "M3O_SERVER__PORT": str(port_b)}, logs, "gateway")
            survivors.append(survivor)
            await ready(client, survivor, url_b, STARTUP)
            api = Api(client, url_b, ADMIN_PASSWORD)
            await api.log_in_admin()

            books = Books(api, redis_db, customer.id, price=PRICE, funds=FUNDS)
            try:
                await until(books.agree, "charges, monthly counter and history agreeing", 30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: last read {books.last}, kill left {left}") from None
            charged, monthly, history = await books.read()

        served = statuses.count(200)
        assert charged == PRICE * monthly == PRICE * history, (charged, monthly, history, left)
        assert 0 < monthly <= served, (monthly, served, statuses)
        assert left[0] > 0, "the kill left no call unfinished: the test proved nothing"
        assert redis_db.hlen(HOLDS) == 0
    finally:
        if victim is not None:
            if victim.popen.poll() is None:
                victim.popen.kill()
            victim.popen.wait()
            victim.stream.close()
        problems = stop(survivors) + stop(list(reversed(services)))
    assert not problems, "\n".join(problems)
    assert_no_logged_errors([*services, *survivors])


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
    answered = asyncio.Event()

    async def kill() -> tuple[int, int]:
        await answered.wait()
        upstream.popen.send_signal(signal.SIGSTOP)
        try:
            # With the upstream frozen an admitted call cannot be answered, so its hold
            # stays until the kill; the deadline only keeps a broken gateway from hanging
            # the test (which then fails on ``left`` below).
            deadline = time.monotonic() + 60
            while counters.hlen(HOLDS) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            victim.popen.send_signal(signal.SIGKILL)
            assert victim.popen.wait(timeout=10) == -signal.SIGKILL
        finally:
            upstream.popen.send_signal(signal.SIGCONT)
        left = counters.hvals(HOLDS)
        return len(left), sum(1 for record in left if b'"s"' in record)

    calls = asyncio.ensure_future(
        burst(
            client, url, key, calls=CALLS, in_flight=IN_FLIGHT, answered=answered, after=KILL_AFTER
        )
    )
    left = await kill()
    statuses = await calls
    assert statuses.count(200) >= KILL_AFTER - IN_FLIGHT, statuses
    return statuses, left
