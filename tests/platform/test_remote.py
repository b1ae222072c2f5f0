"""The platform profile: each service its own process over gRPC, PostgreSQL and Redis.

`m3o run auth`, `m3o run customers` and `m3o run gateway` are started as subprocesses
against a fresh PostgreSQL database and a Redis database of their own, and driven over
HTTP like the local profile; `m3o run helloworld` is called over gRPC and its metrics read
from its metrics port.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from m3o.runtime.rpc import GrpcTransport
from m3o.services.helloworld.proto import helloworld_pb2 as helloworld_pb
from m3o.services.helloworld.proto.client import HelloworldClient
from support.backends import redis_url
from support.metric_samples import samples
from support.platform import (
    CATALOG,
    M3O,
    free_port,
    migrate,
    platform_env,
    start,
    stop,
    until,
    until_serving,
)

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("M3O_TEST_PLATFORM_REDIS") or redis_url(14)
SERVICE_SECRET = "platform-test-service-secret"


async def test_services_in_their_own_processes_serve_the_platform_api(
    database: str, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    port = free_port()
    env = platform_env(
        database,
        REDIS_URL,
        sockets,
        SERVICE_SECRET,
        admin_password="platform-admin-password",
        M3O_SERVER__PORT=str(port),
    )
    migrate(env)
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = [start(name, env, logs) for name in ("auth", "customers", CATALOG, "gateway")]
    url = f"http://127.0.0.1:{port}"
    try:
        await until_serving(sockets, ("auth", "customers"), url)

        def admin_token() -> str:
            response = httpx.post(
                f"{url}/auth/token", json={"id": "admin", "secret": "platform-admin-password"}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["token"]["access_token"])

        await until(lambda: bool(admin_token()), "admin account")
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

        # The console of the gateway process signs the customer in (customers, then auth's
        # Inspect on every page, over gRPC).
        browser = httpx.Client(base_url=url)
        assert browser.get("/console/login").status_code == 200
        form = {
            "csrf_token": browser.cookies["m3o_csrf"],
            "email": "grpc@example.com",
            "password": "a long enough secret",
        }
        signed_in = browser.post("/console/login", data=form)
        assert signed_in.status_code == 303, signed_in.text
        assert "grpc@example.com" in browser.get("/console/").text
        banned = httpx.post(f"{url}/customers/ban", json={"id": customer_id}, headers=admin)
        assert banned.status_code == 200, banned.text
        after = httpx.post(f"{url}/customers/read", json={"id": customer_id}, headers=own)
        assert after.status_code == 401  # the ban reached every process at once
        assert "grpc@example.com" not in browser.get("/console/").text  # and the console
        browser.close()

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
        problems = stop(processes)
    assert not problems, "\n".join(problems)


async def test_auth_will_not_start_in_the_platform_profile_without_a_key_encryption_key(
    database: str, tmp_path: Path
) -> None:
    env = platform_env(database, REDIS_URL, tmp_path, SERVICE_SECRET, key_encryption_key=None)
    migrate(env)

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


async def test_a_service_process_serves_its_rpc_metrics_on_its_metrics_port(
    database: str, redis_db: redis.Redis, workdir: Path
) -> None:
    port = free_port()
    env = platform_env(
        database, REDIS_URL, workdir, SERVICE_SECRET, M3O_SERVER__METRICS_PORT=str(port)
    )
    migrate(env)
    process = start("helloworld", env, workdir)
    try:
        await until((workdir / "helloworld.sock").exists, "helloworld socket")
        channel = grpc.aio.insecure_channel(f"unix:{workdir}/helloworld.sock")
        try:
            client = HelloworldClient(GrpcTransport(channel))
            answer = await client.call(helloworld_pb.CallRequest(name="Ada"))
        finally:
            await channel.close()
        assert answer.message == "Hello Ada"
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        problems = stop([process])
    assert not problems, "\n".join(problems)

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    call = (("method", "Call"), ("service", "helloworld"))
    assert samples(scraped.text, "m3o_rpc_calls_total") == {(("code", "200"), *call): 1.0}
    assert samples(scraped.text, "m3o_rpc_call_duration_seconds_count") == {call: 1.0}
