"""The platform profile around a Redis outage: 503 while Redis is away, 200 as soon as it
is back, on the very first call.

`m3o run auth`, `m3o run customers` and `m3o run gateway` run as subprocesses against a
fresh PostgreSQL database and a Redis server of the test's own, which it stops and starts.
Logging in goes gateway -> customers -> auth, and auth counts login attempts in Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from backends import POSTGRES_URL
from throwaway_redis import RedisServer, free_port, redis_server

pytestmark = pytest.mark.e2e

M3O = [sys.executable, "-m", "m3o"]
ADMIN_PASSWORD = "outage-admin-password"
EMAIL = "outage@example.com"
PASSWORD = "a long enough secret"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"m3o_outage_{uuid.uuid4().hex[:10]}"
    server = make_url(POSTGRES_URL)
    engine = create_async_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready within {timeout} s")


def _stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(600)  # four processes start on a machine that may be busy
async def test_login_is_503_while_redis_is_away_and_200_on_the_first_call_after(
    database: str, redis: RedisServer, tmp_path: Path
) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": redis.url(),
        "M3O_AUTH__SERVICE_SECRET": "outage-test-service-secret-of-some-length",
        "M3O_AUTH__KEY_ENCRYPTION_KEY": "cGxhdGZvcm0tdGVzdC1rZXktZW5jcnlwdGlvbi0zMmI=",
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{sockets}/{{service}}.sock",
        "M3O_SERVER__PORT": str(port),
    }
    migrated = subprocess.run(
        [*M3O, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ("auth", "customers", "gateway")
    streams = [(logs / f"{name}.log").open("w") for name in names]
    processes = [
        subprocess.Popen(
            [*M3O, "run", name], env=env, stdout=stream, stderr=subprocess.STDOUT, text=True
        )
        for name, stream in zip(names, streams, strict=True)
    ]
    url = f"http://127.0.0.1:{port}"

    def post(path: str, body: dict[str, str], token: str = "") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)

    def admin_token() -> str:
        response = post("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["token"]["access_token"])

    def login() -> httpx.Response:
        return post("/customers/login", {"email": EMAIL, "password": PASSWORD})

    try:
        for name in ("auth", "customers"):
            wait_until(lambda n=name: (sockets / f"{n}.sock").exists(), f"{name} socket")
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, "gateway")
        wait_until(lambda: bool(admin_token()), "admin account")
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
        _stop(processes)
        for stream in streams:
            stream.close()
    for name in names:
        assert PASSWORD not in (logs / f"{name}.log").read_text()  # secrets never logged
