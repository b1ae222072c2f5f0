"""The platform profile: each service its own process over gRPC, PostgreSQL and Redis.

`m3o run auth`, `m3o run customers` and `m3o run gateway` are started as subprocesses
against a fresh PostgreSQL database and a Redis database of their own, and driven over
HTTP like the local profile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from backends import POSTGRES_URL, redis_url

pytestmark = pytest.mark.e2e

M3O = [sys.executable, "-m", "m3o"]
REDIS_URL = os.environ.get("M3O_TEST_PLATFORM_REDIS") or redis_url(14)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"m3o_platform_{uuid.uuid4().hex[:10]}"
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


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready within {timeout} s")


async def test_services_in_their_own_processes_serve_the_platform_api(
    database: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": REDIS_URL,
        "M3O_AUTH__SERVICE_SECRET": "platform-test-service-secret",
        "M3O_AUTH__KEY_ENCRYPTION_KEY": "cGxhdGZvcm0tdGVzdC1rZXktZW5jcnlwdGlvbi0zMmI=",
        "M3O_ADMIN_PASSWORD": "platform-admin-password",
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{sockets}/{{service}}.sock",
        "M3O_SERVER__PORT": str(port),
    }
    migrated = subprocess.run(
        [*M3O, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    processes = [
        subprocess.Popen([*M3O, "run", name], env=env, stderr=subprocess.PIPE, text=True)
        for name in ("auth", "customers", "gateway")
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        for name in ("auth", "customers"):
            wait_until(lambda n=name: (sockets / f"{n}.sock").exists(), f"{name} socket")
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, "gateway")

        def admin_token() -> str:
            response = httpx.post(
                f"{url}/auth/token", json={"id": "admin", "secret": "platform-admin-password"}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["token"]["access_token"])

        wait_until(lambda: bool(admin_token()), "admin account")
        admin = {"Authorization": f"Bearer {admin_token()}"}
        created = httpx.post(
            f"{url}/customers/create", json={"email": "grpc@example.com"}, headers=admin
        )
        assert created.status_code == 200, created.text
        customer_id = created.json()["customer"]["id"]

        read = httpx.post(f"{url}/customers/read", json={"id": customer_id}, headers=admin)
        assert read.status_code == 200
        assert read.json()["customer"]["email"] == "grpc@example.com"

        missing = httpx.post(f"{url}/customers/read", json={"id": "nobody"}, headers=admin)
        assert missing.status_code == 404
        assert missing.json()["id"] == "customers.read.notfound"

        anonymous = httpx.post(f"{url}/customers/read", json={"id": customer_id})
        assert anonymous.status_code == 401

        # customers -> auth over gRPC: banning deletes and blocks the auth account
        generated = httpx.post(
            f"{url}/auth/generate",
            json={
                "id": customer_id,
                "type": "customer",
                "scopes": ["customer"],
                "name": "grpc@example.com",
                "secret": "a long enough secret",
            },
            headers=admin,
        )
        assert generated.status_code == 200, generated.text
        httpx.post(f"{url}/customers/markVerified", json={"id": customer_id}, headers=admin)
        login = httpx.post(
            f"{url}/customers/login",
            json={"email": "grpc@example.com", "password": "a long enough secret"},
        )
        assert login.status_code == 200, login.text
        own = {"Authorization": f"Bearer {login.json()['token']['access_token']}"}
        assert httpx.post(f"{url}/customers/read", json={}, headers=own).status_code in (400, 200)
        banned = httpx.post(f"{url}/customers/ban", json={"id": customer_id}, headers=admin)
        assert banned.status_code == 200, banned.text
        after = httpx.post(f"{url}/customers/read", json={"id": customer_id}, headers=own)
        assert after.status_code == 401  # the ban reached every process at once

        engine = create_async_engine(database)
        try:
            async with engine.connect() as conn:
                stored = (await conn.execute(text("SELECT private_key FROM auth_keys"))).all()
        finally:
            await engine.dispose()
        assert stored
        assert all(row.private_key.startswith("aesgcm1:") for row in stored)
        assert not any("PRIVATE KEY" in row.private_key for row in stored)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            assert process.returncode in (0, -signal.SIGTERM), err
        client.flushdb()
        client.close()


async def test_auth_will_not_start_in_the_platform_profile_without_a_key_encryption_key(
    database: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": REDIS_URL,
        "M3O_AUTH__SERVICE_SECRET": "platform-test-service-secret",
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{tmp_path}/{{service}}.sock",
    }
    env.pop("M3O_AUTH__KEY_ENCRYPTION_KEY", None)
    migrated = subprocess.run(
        [*M3O, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr

    started = subprocess.run(
        [*M3O, "run", "auth"], env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "auth.key_encryption_key" in lines[0]
    assert "Traceback" not in started.stderr
    engine = create_async_engine(database)
    try:
        async with engine.connect() as conn:
            made = (await conn.execute(text("SELECT count(*) FROM auth_keys"))).scalar_one()
    finally:
        await engine.dispose()
    assert made == 0  # no signing key was made in clear
