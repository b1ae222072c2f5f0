"""The platform profile's status page: services in their own processes, checked over gRPC
health; a stopped service and an unreachable Redis are reported, and nothing else.

`m3o run customers`, `m3o run status` and `m3o run gateway` run as subprocesses against a
fresh PostgreSQL database and a Redis server of the test's own, which it stops and starts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.platform import (
    M3O,
    free_port,
    listening,
    migrate,
    platform_env,
    start,
    stop,
    until,
)
from support.throwaway_redis import RedisServer, redis_server

pytestmark = pytest.mark.e2e

STARTUP = 120
"""Seconds a process may take to start."""
ALL_OK = {
    "customers": "OK",
    "status": "OK",
    "database": "OK",
    "counters": "OK",
    "events": "OK",
}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.mark.timeout(600)  # three processes start on a machine that may be busy
async def test_a_stopped_service_and_an_unreachable_redis_are_exactly_what_is_not_healthy(
    database: str, redis: RedisServer, tmp_path: Path
) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    port = free_port()
    env = platform_env(
        database,
        redis.url(),
        sockets,
        "status-test-service-secret-of-some-length",
        M3O_SERVER__PORT=str(port),
        # auth is defined but not started: only what runs here is listed (and a name no
        # service has, which is dropped).
        M3O_STATUS__SERVICES="customers,status,no-such-service",
    )
    migrate(env)
    logs = tmp_path / "logs"
    logs.mkdir()
    customers = start("customers", env, logs)
    processes = [customers, start("status", env, logs), start("gateway", env, logs)]
    url = f"http://127.0.0.1:{port}"

    def page() -> httpx.Response:
        return httpx.get(f"{url}/status/call", timeout=30)

    def answers(status_code: int, expected: dict[str, Any]) -> bool:
        response = page()
        return response.status_code == status_code and response.json() == expected

    def cli_status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*M3O, "status", "--address", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def catalog_loading() -> bool:
        # Its catalog call needs a token from auth, stopped here: the gateway listens
        # anyway, a short while after it starts, and says why it is not ready.
        readiness = httpx.get(f"{url}/readyz", timeout=30)
        return readiness.status_code == 503 and readiness.json()["checks"] == {
            "shutdown": "ok",
            "counters": "ok",
            "catalog": "loading",
        }

    try:
        await listening(processes[:2], sockets, seconds=STARTUP)
        await until(catalog_loading, "the gateway listening, its catalog loading", STARTUP)
        await until(lambda: answers(200, ALL_OK), "all OK", seconds=STARTUP)

        redis.stop()
        during = page()
        assert during.status_code == 500, during.text
        assert during.json() == {**ALL_OK, "counters": "NOT_HEALTHY", "events": "NOT_HEALTHY"}
        shown = cli_status()
        assert shown.returncode == 1, shown.stdout + shown.stderr
        rows = dict(line.split() for line in shown.stdout.splitlines()[1:-1])
        assert rows == during.json()
        assert shown.stdout.splitlines()[-1] == "2 of 5 not OK"

        redis.start()
        await until(lambda: answers(200, ALL_OK), "all OK after Redis is back", seconds=30)

        assert not stop([customers])
        stopped = page()
        assert stopped.status_code == 500, stopped.text
        assert stopped.json() == {**ALL_OK, "customers": "NOT_HEALTHY"}
    finally:
        problems = stop(processes)
    assert not problems, "\n".join(problems)
    status_log = processes[1].output(tail=10_000_000)
    assert "status.not_healthy" in status_log  # the causes are in the log, not the answer
