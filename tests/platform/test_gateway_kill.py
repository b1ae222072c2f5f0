"""A gateway killed with SIGKILL mid-burst: what was charged, counted monthly and kept in
the usage history still agree, and never exceed the 200s the client saw.

The platform profile as `test_public_api.py` runs it (its helpers are reused): every
service the public API needs as its own `m3o run <service>` process, a fresh PostgreSQL
database, this run's Redis test database. A burst of paid calls goes through gateway A,
which is killed (SIGKILL) while dozens are in flight: some admitted and not answered, some
answered with their request events still in A's memory. Gateway B then starts and recovers
A's calls (A's lease is removed first: the 30 s it would take to expire is all that is
skipped). Once the usage consumers have caught up:

    units charged == price x the monthly counter == the history's calls <= the 200s seen.

A call is committed (charged) only once its 200 has been handed over, so a call answered
but not yet committed when A dies is released by B: answered free.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backends import REDIS_URL
from m3o.runtime.jsonmap import message_to_dict
from m3o.services.helloworld import catalog
from m3o.services.usage.counters import TOTAL, monthly_key

_spec = importlib.util.spec_from_file_location(
    "_platform_public_api", Path(__file__).with_name("test_public_api.py")
)
assert _spec is not None and _spec.loader is not None
public_api: Any = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = public_api
    _spec.loader.exec_module(public_api)
database = public_api.database  # fixtures: a fresh PostgreSQL database, a short directory
workdir = public_api.workdir

pytestmark = pytest.mark.e2e

PRICE = 7
FUNDS = 1_000_000
CALLS = 400
"""Paid calls in the burst (most of them are cut short by the kill)."""
IN_FLIGHT = 48
KILL_AFTER = 120
"""Answers the client has had when gateway A is killed."""
COUNTERS_PREFIX = "m3o:"
CALL_PATH = "/v1/helloworld/call"
BOOK = COUNTERS_PREFIX + "v1:holds"
STARTUP = 120
"""Seconds a process may take to start (eight start at once on a shared machine)."""


@pytest.fixture
def redis_db() -> Any:
    """This run's Redis test database, empty before and after."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.mark.timeout(300)
async def test_a_gateway_killed_mid_burst_leaves_charges_counters_and_history_agreeing(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": REDIS_URL,
        "M3O_AUTH__SERVICE_SECRET": "kill-test-service-secret",
        "M3O_AUTH__KEY_ENCRYPTION_KEY": "cGxhdGZvcm0tdGVzdC1rZXktZW5jcnlwdGlvbi0zMmI=",
        "M3O_ADMIN_PASSWORD": public_api.ADMIN_PASSWORD,
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{sockets}/{{service}}.sock",
        "M3O_SERVER__LOG_LEVEL": "warning",
        "M3O_V1__RATE_LIMITS__FREE": "100000",
        "M3O_V1__KEY_PEPPER": "kill-test-key-pepper",
    }
    migrated = subprocess.run(
        [*public_api.M3O, "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr

    start, until = public_api.start, public_api.until
    services = [start(name, env, logs) for name in public_api.SERVICES]
    survivors: list[Any] = []
    victim: Any = None
    limits = httpx.Limits(max_connections=2 * IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    try:
        for process in services:

            async def listening(process: Any = process) -> bool:
                assert process.popen.poll() is None, process.output()
                return (sockets / f"{process.name}.sock").exists()

            await until(listening, f"{process.name} socket", seconds=STARTUP)
        port_a, port_b = public_api.free_port(), public_api.free_port()
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        victim = start("gateway-a", {**env, "M3O_SERVER__PORT": str(port_a)}, logs, "gateway")
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def ready(process: Any, url: str) -> bool:
                assert process.popen.poll() is None, process.output()
                return (await client.get(f"{url}/readyz")).status_code == 200

            await until(lambda: ready(victim, url_a), "gateway A ready", seconds=STARTUP)
            api = public_api.Api(client, url_a)

            async def admin_ready() -> bool:
                await api.log_in_admin()
                return True

            await until(admin_ready, "admin account", seconds=STARTUP)
            customer = await paid_helloworld_customer(api, client, url_a)

            statuses, left = await burst_and_kill(client, url_a, customer.key, victim, redis_db)

            # A's lease would expire in 30 s; removing it is the same, sooner.
            for lease in redis_db.scan_iter(match=f"{COUNTERS_PREFIX}v1:holds-lease:*"):
                redis_db.delete(lease)
            survivor = start("gateway-b", {**env, "M3O_SERVER__PORT": str(port_b)}, logs, "gateway")
            survivors.append(survivor)
            await until(lambda: ready(survivor, url_b), "gateway B ready", seconds=STARTUP)
            api = public_api.Api(client, url_b)
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
        problems = public_api.stop(survivors) + public_api.stop(list(reversed(services)))
    assert not problems, "\n".join(problems)
    for process in [*services, *survivors]:
        log = process.output(tail=10_000_000)
        errors = [line for line in log.splitlines() if public_api.ERROR_LINE.search(line)]
        assert not errors, f"{process.name} logged errors:\n" + "\n".join(errors)


async def paid_helloworld_customer(api: Any, client: httpx.AsyncClient, url: str) -> Any:
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
    probe = await public_api.new_customer(api, "probe", FUNDS)

    async def priced() -> bool:
        outcome = await public_api.call(client, [url], 0, probe.key)
        return bool(outcome.price == str(PRICE))

    await public_api.until(priced, "the new price on gateway A", seconds=10)
    return await public_api.new_customer(api, "payer", FUNDS)


async def burst_and_kill(
    client: httpx.AsyncClient, url: str, key: str, victim: Any, counters: redis.Redis
) -> tuple[list[int], tuple[int, int]]:
    """``CALLS`` paid calls, ``IN_FLIGHT`` at a time; once ``KILL_AFTER`` have been
    answered, the gateway is killed the moment its calls hold reservations. The status of
    each call (0: no answer), and the holds the kill left: all, and those served (their
    event not published yet)."""
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
        # The moment some call holds a reservation (a second at most: the code before
        # holds has none to wait for, and is killed mid-burst all the same).
        deadline = time.monotonic() + 1
        while counters.hlen(BOOK) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0)
        victim.popen.send_signal(signal.SIGKILL)
        assert victim.popen.wait(timeout=10) == -signal.SIGKILL
        left = counters.hvals(BOOK)
        return len(left), sum(1 for record in left if b'"s"' in record)

    calls = asyncio.gather(*(one(n) for n in range(CALLS)))
    left = await kill()
    await calls
    assert statuses.count(200) >= KILL_AFTER - IN_FLIGHT, statuses
    return statuses, left


class Books:
    """The customer's charges, monthly counter and history, as the platform reports them."""

    def __init__(self, api: Any, counters: redis.Redis, customer_id: str) -> None:
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
