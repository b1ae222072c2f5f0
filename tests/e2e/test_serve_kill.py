"""`m3o serve` killed with SIGKILL in the middle of a burst of paid calls, then started
again on the same data directory.

In the local profile a call's charge and its request event are committed together before
its answer is sent, and reservations of calls in flight live only in memory (see the
gateway's `v1/README.md`). So, whatever the moment of the kill:

- no call that got a 200 is left uncharged: the monthly counter counts at least the 200s;
- no call is counted twice: units charged == price x the monthly counter == the calls in
  the usage history (the consumers finish the events the kill left, after the restart);
- `m3o balance check` finds every balance agreeing with the ledger.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from e2e.serving import ADMIN_PASSWORD, serve
from m3o.runtime.counters.tables import counters
from m3o.services.usage.counters import TOTAL, monthly_key
from support.paid_calls import burst, paid_helloworld_customer
from support.platform import Api, admin_api, assert_balances_check, until

pytestmark = pytest.mark.e2e

PRICE = 7
FUNDS = 1_000_000
CALLS = 600
IN_FLIGHT = 48
KILL_AFTER = 150
"""Answers the client has had when `m3o serve` is killed."""


@pytest.mark.timeout(300)
async def test_serve_killed_mid_burst_charges_every_200_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_V1__RATE_LIMITS__FREE": "100000",
        "M3O_SERVER__LOG_LEVEL": "warning",
    }
    limits = httpx.Limits(max_connections=2 * IN_FLIGHT, keepalive_expiry=2.0)
    first = serve(data_dir, env)
    try:
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            api = await admin_api(client, first.url, ADMIN_PASSWORD, 60)
            customer = await paid_helloworld_customer(
                api, client, first.url, price=PRICE, funds=FUNDS
            )
            statuses = await burst_and_kill(client, first.url, customer.key, first.process)
    finally:
        if first.process.poll() is None:
            first.process.kill()
        first.process.communicate()

    second = serve(data_dir, env)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            api = Api(client, second.url, ADMIN_PASSWORD)
            await api.log_in_admin()

            async def history_caught_up() -> bool:
                return await history(api, customer.id) == monthly(data_dir, customer.id)

            await until(history_caught_up, "the usage history of the calls before the kill", 60)
            current = await api.as_admin("/balance/current", {"customer_id": customer.id})
            charged = FUNDS - int(current.get("current_balance", 0))
            calls_in_history = await history(api, customer.id)
    finally:
        assert "Traceback" not in second.stop()

    counted = monthly(data_dir, customer.id)
    served, cut = statuses.count(200), statuses.count(0)
    assert cut > 0, "the kill cut no call short: the test proved nothing"
    assert charged == PRICE * counted == PRICE * calls_in_history, (charged, counted, statuses)
    assert served <= counted <= served + cut, (served, counted, cut)
    assert_balances_check({**env, "M3O_DATA_DIR": str(data_dir)}, tmp_path)


async def burst_and_kill(
    client: httpx.AsyncClient, url: str, key: str, victim: subprocess.Popen[str]
) -> list[int]:
    """``CALLS`` paid calls, ``IN_FLIGHT`` at a time; once ``KILL_AFTER`` are answered,
    `m3o serve` is killed. The status of each call (0: no answer)."""
    answered = asyncio.Event()
    calls = asyncio.ensure_future(
        burst(
            client, url, key, calls=CALLS, in_flight=IN_FLIGHT, answered=answered, after=KILL_AFTER
        )
    )
    await answered.wait()
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    statuses = await calls
    assert all(status in (0, 200) for status in statuses), statuses
    return statuses


async def history(api: Api, customer_id: str) -> int:
    """The customer's helloworld calls in the usage history."""
    read = await api.as_admin("/usage/read", {"customer_id": customer_id})
    records = read.get("usage", {}).get("helloworld", {}).get("records", [])
    return sum(int(record.get("requests", 0)) for record in records)


def monthly(data_dir: Path, customer_id: str) -> int:
    """The customer's monthly count of calls, as the database holds it."""
    key = monthly_key(customer_id, TOTAL, datetime.now(UTC))
    with sqlite3.connect(data_dir / "m3o.db") as database:
        row = database.execute(
            f"SELECT count FROM {counters.name} WHERE key = ?",
            (key,),
        ).fetchone()
    return int(row[0]) if row else 0
