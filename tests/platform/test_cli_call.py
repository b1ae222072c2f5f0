"""`m3o call v1 <Method>` reaches the v1 service at its key-management paths, against the
whole local platform served over HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import uvicorn

from m3o.platform.local import open_local
from support.password_hash import CHEAP_PASSWORD_HASH
from support.platform import post

ADMIN_PASSWORD = "cli-call-admin-password"
EMAIL = "cli@example.com"
PASSWORD = "a long enough secret"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """The local platform on a free port, served from a thread with its own event loop."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    servers: list[uvicorn.Server] = []
    failures: list[BaseException] = []

    async def serve() -> None:
        env = {"M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD, **CHEAP_PASSWORD_HASH}
        platform = await open_local(tmp_path, env)
        config = uvicorn.Config(platform.app, lifespan="on", log_config=None, access_log=False)
        server = uvicorn.Server(config)
        servers.append(server)
        await server.serve(sockets=[listener])

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (servers and servers[0].started):
        if failures or not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError(f"the platform did not start: {failures}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        servers[0].should_exit = True
        thread.join(timeout=30)
        listener.close()


def m3o(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``m3o`` command as a person runs it (no admin password around)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M3O_")}
    return subprocess.run(
        [sys.executable, "-m", "m3o", *args, "--address", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_m3o_call_v1_blocks_and_unblocks_a_key(url: str) -> None:
    admin_login = post(url, "/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
    admin = admin_login.json()["token"]["access_token"]
    customer_id = post(url, "/customers/create", {"email": EMAIL}, admin).json()["customer"]["id"]
    account = {"id": customer_id, "type": "customer", "scopes": ["customer"], "name": EMAIL}
    assert post(url, "/auth/generate", {**account, "secret": PASSWORD}, admin).status_code == 200
    assert post(url, "/customers/markVerified", {"id": customer_id}, admin).status_code == 200
    login = post(url, "/customers/login", {"email": EMAIL, "password": PASSWORD})
    customer = login.json()["token"]["access_token"]
    generated = post(
        url, "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "cli"}, customer
    )
    key_id = generated.json()["api_key_id"]

    def status() -> str:
        [key] = post(url, "/v1/api/keys/list", {}, customer).json()["api_keys"]
        return str(key["status"])

    request = orjson.dumps({"user_id": customer_id, "key_id": key_id, "message": "Unpaid"})
    blocked = m3o(url, "call", "v1", "BlockKey", request.decode(), "--token", admin)
    assert blocked.returncode == 0, blocked.stderr
    assert orjson.loads(blocked.stdout) == {}
    assert status() == "blocked"

    unblock = orjson.dumps({"user_id": customer_id}).decode()
    unblocked = m3o(url, "call", "v1", "V1.UnblockKey", unblock, "--token", admin)
    assert unblocked.returncode == 0, unblocked.stderr
    assert status() == "active"

    refused = m3o(url, "call", "v1", "BlockKey", request.decode(), "--token", customer)
    assert refused.returncode == 1
    assert orjson.loads(refused.stderr)["code"] == 403
    assert status() == "active"


def test_m3o_call_v1_of_a_method_without_a_path_says_so(url: str) -> None:
    result = m3o(url, "call", "v1", "ResolveKey", "{}", "--token", "anything")
    assert result.returncode == 1
    assert "v1 ResolveKey cannot be called over HTTP" in result.stderr
    assert "BlockKey" in result.stderr
