"""The platform profile around a Redis outage: 503 while Redis is away, 200 as soon as it
is back, on the very first call.

`m3o run auth`, `m3o run customers` and `m3o run gateway` run as subprocesses against a
fresh PostgreSQL database and a Redis server of the test's own, which it stops and starts.
Logging in goes gateway -> customers -> auth, and auth counts login attempts in Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import support.platform
from support.platform import (
    CATALOG,
    free_port,
    migrate,
    platform_env,
    start,
    stop,
    until,
    until_serving,
)
from support.throwaway_redis import RedisServer, redis_server

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "outage-admin-password"
EMAIL = "outage@example.com"
PASSWORD = "a long enough secret"
STARTUP = 120
"""Seconds a process may take to start."""


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.mark.timeout(600)  # four processes start on a machine that may be busy
async def test_login_is_503_while_redis_is_away_and_200_on_the_first_call_after(
    database: str, redis: RedisServer, tmp_path: Path
) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    port = free_port()
    env = platform_env(
        database,
        redis.url(),
        sockets,
        "outage-test-service-secret-of-some-length",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__PORT=str(port),
    )
    migrate(env)
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = [start(name, env, logs) for name in ("auth", "customers", CATALOG, "gateway")]
    url = f"http://127.0.0.1:{port}"

    def post(path: str, body: dict[str, str], token: str = "") -> httpx.Response:
        return support.platform.post(url, path, body, token)

    def admin_token() -> str:
        response = post("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["token"]["access_token"])

    def login() -> httpx.Response:
        return post("/customers/login", {"email": EMAIL, "password": PASSWORD})

    try:
        await until_serving(sockets, ("auth", "customers"), url, seconds=STARTUP)
        await until(lambda: bool(admin_token()), "admin account", seconds=STARTUP)
        admin = admin_token()
        created = post("/customers/create", {"email": EMAIL}, admin)
        assert created.status_code == 200, created.text
        customer_id = created.json()["customer"]["id"]
        generated = post(
            "/auth/generate",
            {
                "id": customer_id,
                "type": "customer",
                "scopes": ["customer"],  # type: ignore[dict-item]
                "name": EMAIL,
                "secret": PASSWORD,
            },
            admin,
        )
        assert generated.status_code == 200, generated.text
        assert post("/customers/markVerified", {"id": customer_id}, admin).status_code == 200
        assert login().status_code == 200

        # Redis restarts while nobody calls: the connections from before are dead.
        redis.restart()
        first = login()
        assert first.status_code == 200, first.text

        redis.stop()
        during = login()
        assert during.status_code == 503, during.text
        assert during.json() == {
            "id": "customers.login",
            "code": 503,
            "detail": "Service unavailable",
            "status": "Service Unavailable",
        }

        redis.start()
        after = login()
        assert after.status_code == 200, after.text
        assert after.json()["customer_id"] == customer_id
    finally:
        stop(processes)  # how they exit after an outage is not what this test is about
    for process in processes:
        assert PASSWORD not in process.log.read_text()  # secrets never logged
