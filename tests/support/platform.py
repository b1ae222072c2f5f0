"""The harness of the platform tests (``tests/platform``): `m3o` processes, their settings,
waiting for them, and the platform and public API calls the tests make through a gateway.

The fixtures built on it (``database``, ``workdir``) are in ``tests/platform/conftest.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from m3o.platform.local import LocalPlatform, open_local
from support.backends import POSTGRES_URL
from support.database_drops import drop_later
from support.password_hash import CHEAP_PASSWORD_HASH
from support.ports import free_port

__all__ = [
    "CALL_PATH",
    "ERROR_LINE",
    "KEY_ENCRYPTION_KEY",
    "M3O",
    "PASSWORD",
    "SERVICES",
    "STOP_SECONDS",
    "Api",
    "Customer",
    "Outcome",
    "Process",
    "admin_api",
    "assert_balances_check",
    "assert_no_logged_errors",
    "bearer",
    "call",
    "emptied_redis",
    "free_port",
    "fresh_database",
    "listening",
    "local_platform",
    "migrate",
    "new_customer",
    "platform_env",
    "post",
    "ready",
    "start",
    "stop",
    "until",
    "until_serving",
]

M3O = [sys.executable, "-m", "m3o"]
KEY_ENCRYPTION_KEY = "cGxhdGZvcm0tdGVzdC1rZXktZW5jcnlwdGlvbi0zMmI="
"""The platform profile's ``auth.key_encryption_key`` in these tests (32 bytes, base64)."""
SERVICES = (
    "auth",
    "customers",
    "projects",
    "publicapi",
    "balance",
    "usage",
    "v1",
    "helloworld",
)
"""Every service the public API needs, each run as its own process."""
CATALOG = "publicapi"
"""The catalog's service. A gateway is not ready (``/readyz``) until it has loaded the
catalog: tests start it beside a gateway even when they call no ``/v1`` API."""
PASSWORD = "a public api password"
"""The password of the customers :func:`new_customer` makes."""
CALL_PATH = "/v1/helloworld/call"
ERROR_LINE = re.compile(r'"level": "(error|critical)"')


# --- settings and databases -----------------------------------------------------------------


def platform_env(
    database: str,
    redis_url: str,
    sockets: Path,
    service_secret: str,
    *,
    admin_password: str | None = None,
    key_encryption_key: str | None = KEY_ENCRYPTION_KEY,
    **settings: str,
) -> dict[str, str]:
    """This process's environment plus the platform profile's settings: the database, Redis,
    the service secret, the key encryption key (none, even one set around, if ``None``), the
    admin password if given, services on unix sockets in ``sockets``, and ``settings``
    (``M3O_SERVER__PORT="8080"``)."""
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": redis_url,
        "M3O_AUTH__SERVICE_SECRET": service_secret,
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{sockets}/{{service}}.sock",
        **settings,
    }
    env.pop("M3O_AUTH__KEY_ENCRYPTION_KEY", None)
    if key_encryption_key is not None:
        env["M3O_AUTH__KEY_ENCRYPTION_KEY"] = key_encryption_key
    if admin_password is not None:
        env["M3O_ADMIN_PASSWORD"] = admin_password
    return env


def migrate(env: Mapping[str, str]) -> None:
    """``m3o migrate`` with ``env``, which must succeed."""
    migrated = subprocess.run(
        [*M3O, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (its URL), dropped after the test (see
    :mod:`support.database_drops`)."""
    name = f"m3o_platform_{uuid.uuid4().hex[:10]}"
    server = make_url(POSTGRES_URL)
    engine = create_async_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_later(server, name)  # the drop waits for a checkpoint: the test need not


@asynccontextmanager
async def local_platform(
    data_dir: Path, env: Mapping[str, str], database: str
) -> AsyncIterator[LocalPlatform]:
    """The local profile opened in ``data_dir`` with ``env``, its database SQLite (the data
    directory's file) or PostgreSQL (a fresh database), closed at the end. Secrets are
    hashed cheaply unless ``env`` says otherwise (see :mod:`support.password_hash`)."""
    env = {**CHEAP_PASSWORD_HASH, **env}
    if database == "sqlite":
        opened = await open_local(data_dir, env)
        try:
            yield opened
        finally:
            await opened.close()
        return
    assert POSTGRES_URL
    async with fresh_database() as url:
        opened = await open_local(data_dir, {**env, "M3O_DATABASE__URL": url})
        try:
            yield opened
        finally:
            await opened.close()


@contextmanager
def emptied_redis(url: str) -> Iterator[redis.Redis]:
    """A connection to the Redis database at ``url``, emptied before and after."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# --- processes ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    log: Path
    stream: TextIO

    def output(self, tail: int = 4000) -> str:
        if not self.stream.closed:
            self.stream.flush()
        return self.log.read_text(errors="replace")[-tail:]


def start(name: str, env: Mapping[str, str], logs: Path, argument: str = "") -> Process:
    """``m3o run <argument or name>`` with its output in ``logs/<name>.log``."""
    log = logs / f"{name}.log"
    stream = log.open("w")
    popen = subprocess.Popen(
        [*M3O, "run", argument or name],
        env=dict(env),
        stdout=stream,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Process(name, popen, log, stream)


STOP_SECONDS = 60
"""How long a stopping process may take: its own longest drain is the gRPC grace (10 s)
plus the event bus's wait for running handlers (30 s)."""


def stop(processes: list[Process]) -> list[str]:
    """SIGTERM every process, then wait for each; the problems of those that did not exit
    cleanly (killed after ``STOP_SECONDS``)."""
    for process in processes:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    problems: list[str] = []
    for process in processes:
        try:
            process.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
        process.stream.close()
        if process.popen.returncode not in (0, -signal.SIGTERM):
            problems.append(
                f"{process.name} exited {process.popen.returncode}:\n{process.output()}"
            )
    return problems


def assert_no_logged_errors(processes: Iterable[Process]) -> None:
    """No process logged an error (or worse)."""
    for process in processes:
        log = process.output(tail=10_000_000)
        errors = [line for line in log.splitlines() if ERROR_LINE.search(line)]
        assert not errors, f"{process.name} logged errors:\n" + "\n".join(errors)


def assert_balances_check(env: Mapping[str, str], workdir: Path) -> None:
    """`m3o balance check` with ``env`` finds every balance equal to its ledger."""
    checked = subprocess.run(
        [*M3O, "balance", "check"],
        env=dict(env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "every balance equals its ledger" in checked.stdout


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, seconds: float = 90
) -> None:
    """Wait for ``check()`` (plain or awaitable) to be true; a check that fails to connect
    counts as false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answer = check()
            if await answer if inspect.isawaitable(answer) else answer:
                return
        except (httpx.HTTPError, OSError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


async def until_serving(
    sockets: Path, services: Iterable[str], url: str, seconds: float = 90
) -> None:
    """Wait for each of ``services`` to listen on its unix socket in ``sockets``, then for
    the gateway at ``url`` to be ready."""
    for name in services:
        socket = sockets / f"{name}.sock"
        await until(socket.exists, f"{name} socket", seconds)
    await until(lambda: httpx.get(f"{url}/readyz").status_code == 200, "gateway", seconds)


async def listening(services: list[Process], sockets: Path, seconds: float) -> None:
    """Wait for each service process to listen on its unix socket in ``sockets``."""
    for process in services:

        async def up(process: Process = process) -> bool:
            assert process.popen.poll() is None, process.output()
            return (sockets / f"{process.name}.sock").exists()

        await until(up, f"{process.name} socket", seconds=seconds)


async def ready(client: httpx.AsyncClient, gateway: Process, url: str, seconds: float) -> None:
    """Wait for the gateway process at ``url`` to be ready (it must not exit meanwhile)."""

    async def answers() -> bool:
        assert gateway.popen.poll() is None, gateway.output()
        return (await client.get(f"{url}/readyz")).status_code == 200

    await until(answers, f"{gateway.name} ready", seconds=seconds)


async def admin_api(client: httpx.AsyncClient, url: str, password: str, seconds: float) -> Api:
    """The platform API at ``url`` as the admin, once the admin account can log in."""
    api = Api(client, url, password)

    async def logged_in() -> bool:
        await api.log_in_admin()
        return True

    await until(logged_in, "admin account", seconds=seconds)
    return api


# --- the platform API -----------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of ``token`` (none for an empty one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def post(url: str, path: str, body: object, token: str = "") -> httpx.Response:
    """``POST <url><path>`` of ``body`` as JSON, with ``token`` if given."""
    return httpx.post(f"{url}{path}", json=body, headers=bearer(token), timeout=30)


class Api:
    """Platform API calls (``/<service>/<endpoint>``) through one gateway."""

    def __init__(self, client: httpx.AsyncClient, url: str, admin_password: str) -> None:
        self.client = client
        self.url = url
        self.admin = ""
        self._admin_password = admin_password

    async def post(self, path: str, body: Mapping[str, Any], token: str = "") -> dict[str, Any]:
        response = await self.client.post(f"{self.url}{path}", json=body, headers=bearer(token))
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    async def as_admin(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.post(path, body, self.admin)

    async def log_in_admin(self) -> None:
        answer = await self.post("/auth/token", {"id": "admin", "secret": self._admin_password})
        self.admin = str(answer["token"]["access_token"])


@dataclass(frozen=True)
class Customer:
    id: str
    key: str
    funds: int


async def new_customer(api: Api, name: str, funds: int) -> Customer:
    """A verified customer with a password and ``funds``, logged in, with a helloworld key."""
    email = f"{name}@example.com"
    created = await api.as_admin("/customers/create", {"email": email})
    customer_id = str(created["customer"]["id"])
    await api.as_admin(
        "/auth/generate",
        {
            "id": customer_id,
            "type": "customer",
            "scopes": ["customer"],
            "name": email,
            "secret": PASSWORD,
        },
    )
    await api.as_admin("/customers/markVerified", {"id": customer_id})
    if funds:
        funded = await api.as_admin(
            "/balance/increment",
            {
                "customer_id": customer_id,
                "delta": funds,
                "reference": "Test funds",
                "idempotency_key": f"funds-{customer_id}",
                "visible": True,
            },
        )
        assert funded["new_balance"] == funds
    login = await api.post("/customers/login", {"email": email, "password": PASSWORD})
    token = str(login["token"]["access_token"])
    generated = await api.post(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": name}, token
    )
    key = str(generated["api_key"])
    assert key.startswith("m3o_")
    return Customer(customer_id, key, funds)


# --- the public API -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One call of ``/v1/helloworld/call``, as the caller saw it."""

    gateway: int
    status: int
    price: str
    """``X-M3O-Price`` (empty when not charged)."""
    rate_limit: int | None
    """``RateLimit-Limit``."""
    used: int | None
    """The call's place in its rate window: ``RateLimit-Limit - RateLimit-Remaining``."""
    retry_after: str | None
    error_id: str
    detail: str
    sent: float
    received: float

    @property
    def charge(self) -> int:
        """Units the call was charged."""
        return 0 if self.price in ("", "free", "0") else int(self.price)


async def call(client: httpx.AsyncClient, urls: list[str], gateway: int, key: str) -> Outcome:
    """One call of ``/v1/helloworld/call`` through ``urls[gateway]`` with ``key``."""
    name = uuid.uuid4().hex[:8]
    sent = time.monotonic()
    response = await client.post(
        f"{urls[gateway]}{CALL_PATH}",
        json={"name": name},
        headers={"Authorization": f"Bearer {key}"},
    )
    received = time.monotonic()
    body = response.json()
    if response.status_code == 200:
        assert body == {"message": f"Hello {name}"}
    limit, remaining = (
        response.headers.get("RateLimit-Limit"),
        response.headers.get("RateLimit-Remaining"),
    )
    return Outcome(
        gateway=gateway,
        status=response.status_code,
        price=response.headers.get("X-M3O-Price", ""),
        rate_limit=int(limit) if limit is not None else None,
        used=int(limit) - int(remaining) if limit is not None and remaining is not None else None,
        retry_after=response.headers.get("Retry-After"),
        error_id=str(body.get("id", "")) if response.status_code != 200 else "",
        detail=str(body.get("detail", "")) if response.status_code != 200 else "",
        sent=sent,
        received=received,
    )
