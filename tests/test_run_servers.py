"""Where the run's PostgreSQL and Redis come from (``servers``): configured, default, throwaway.

A configured server that does not answer stops the run; without one, the default address is
used if it answers, and otherwise a throwaway server is started (as root too: PostgreSQL then
runs as ``nobody``), put in the environment for the rest of the run, and removed at its end.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from m3o.runtime.store import create_engine
from support.backends import postgres_url, redis_url
from support.ports import free_port
from support.servers import (
    RunServers,
    ServerUnreachable,
    Started,
    postgres_backend,
    probe_postgres,
    probe_redis,
    redis_backend,
    with_database,
)
from support.throwaway_postgres import PostgresServer, mirror_installation, postgres_binaries

ROOT = Path(__file__).resolve().parent.parent


class NoStart:
    """A throwaway starter that must not be used."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Started:
        self.calls += 1
        raise AssertionError("no throwaway server was to be started")


def at_closed_port(url: str) -> str:
    """``url`` pointing at a port of 127.0.0.1 where nothing listens."""
    return re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{free_port()}", url)


def port_of(url: str) -> int:
    found = re.search(r"127\.0\.0\.1:(\d+)", url)
    assert found is not None, url
    return int(found[1])


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Temporary directories of this test only (a world-reachable one, for ``nobody``)."""
    base = Path(tempfile.mkdtemp(prefix="m3o-test-servers-", dir="/tmp"))
    os.chmod(base, 0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_a_configured_server_that_does_not_answer_stops_the_run_without_a_fallback() -> None:
    start = NoStart()
    url = "postgresql+asyncpg://postgres:hunter2@127.0.0.1:1/test"
    servers = RunServers({"M3O_TEST_POSTGRES": url}, [replace(postgres_backend(), start=start)])

    with pytest.raises(ServerUnreachable) as raised:
        servers.url("PostgreSQL")

    message = str(raised.value)
    assert "M3O_TEST_POSTGRES" in message
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message  # the password is never shown
    assert start.calls == 0


def test_a_configured_server_that_answers_is_used_as_given() -> None:
    start = NoStart()
    configured = with_database(redis_url(), 3)
    servers = RunServers({"M3O_TEST_REDIS": configured}, [replace(redis_backend({}), start=start)])

    assert servers.url("Redis") == configured
    assert start.calls == 0
    assert servers.report() == [f"Redis: {configured} (from M3O_TEST_REDIS)"]


def test_the_default_address_is_used_when_a_server_answers_there() -> None:
    start = NoStart()
    backend = replace(postgres_backend(), default=postgres_url(), start=start)
    environ: dict[str, str] = {}

    assert RunServers(environ, [backend]).url("PostgreSQL") == postgres_url()
    assert start.calls == 0
    assert environ == {}  # nothing started: nothing to tell subprocesses


def test_with_no_server_and_none_to_start_the_run_says_what_to_set() -> None:
    def cannot_start() -> Started:
        raise AssertionError("postgres exited with 1")

    backend = replace(
        postgres_backend(), default=at_closed_port(postgres_url()), start=cannot_start
    )

    with pytest.raises(ServerUnreachable) as raised:
        RunServers({}, [backend]).url("PostgreSQL")

    assert "nothing usable at" in str(raised.value)
    assert "postgres exited with 1" in str(raised.value)
    assert "Set M3O_TEST_POSTGRES" in str(raised.value)


async def test_an_unreachable_default_gets_a_throwaway_postgres_removed_at_the_end(
    own_tmp: Path,
) -> None:
    backend = replace(postgres_backend(), default=at_closed_port(postgres_url()))
    environ: dict[str, str] = {}
    servers = RunServers(environ, [backend])
    try:
        url = servers.url("PostgreSQL")
        assert environ == {"M3O_TEST_POSTGRES": url}  # subprocesses of the run see it
        assert "throwaway server" in servers.report()[0]
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE seen (id int)"))
                await conn.execute(text("INSERT INTO seen VALUES (1)"))
                assert (await conn.execute(text("SELECT count(*) FROM seen"))).scalar() == 1
        finally:
            await engine.dispose()
        assert list(own_tmp.glob("m3o-postgres-*"))
    finally:
        servers.close()

    assert environ == {}
    assert refused(port_of(url))
    assert probe_postgres(url) is not None
    assert list(own_tmp.glob("m3o-postgres-*")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the binaries are reachable for their own user")
def test_binaries_the_server_user_cannot_reach_are_linked_into_its_directory(
    own_tmp: Path,
) -> None:
    private = Path(tempfile.mkdtemp(prefix="m3o-private-", dir="/tmp"))  # 0700, root's
    try:
        os.chmod(private, 0o700)
        server = PostgresServer(mirror_installation(postgres_binaries(), private))
        server.start()
        try:
            assert server.directory is not None
            assert (server.directory / "installation").is_dir()  # linked, as nobody can't reach
            assert probe_postgres(server.url()) is None
        finally:
            server.stop()
        assert refused(server.port)
    finally:
        shutil.rmtree(private)
    assert list(own_tmp.glob("m3o-postgres-*")) == []


def test_without_redis_server_installed_valkey_stands_in_for_the_run(
    own_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(own_tmp))  # no redis-server anywhere
    monkeypatch.delenv("M3O_TEST_REDIS", raising=False)
    backend = replace(redis_backend(os.environ), default=at_closed_port(redis_url()))
    servers = RunServers(os.environ, [backend])
    try:
        url = servers.url("Redis")
        assert os.environ["M3O_TEST_REDIS"] == url
        assert url.endswith("/15")
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            assert "valkey_version" in client.info("server")
        finally:
            client.close()
        assert shutil.which("redis-server") is not None  # for tests that start their own
    finally:
        servers.close()

    assert os.environ["PATH"] == str(own_tmp)
    assert "M3O_TEST_REDIS" not in os.environ
    assert probe_redis(url) is not None
    assert list(own_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "database", "expected"),
    [
        ("redis://127.0.0.1:6379/15", 12, "redis://127.0.0.1:6379/12"),
        ("redis://:p%40ss@cache:6380/8", 14, "redis://:p%40ss@cache:6380/14"),
        ("redis://127.0.0.1:6379", 3, "redis://127.0.0.1:6379/3"),
    ],
)
def test_a_redis_url_names_another_database_on_the_same_server(
    url: str, database: int, expected: str
) -> None:
    assert with_database(url, database) == expected


def run_pytest(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("M3O_TEST_POSTGRES", "M3O_TEST_REDIS", "M3O_TEST_THROWAWAY")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_test_command_stops_at_once_when_a_configured_server_is_down() -> None:
    result = run_pytest(
        {"M3O_TEST_REDIS": at_closed_port(redis_url())}, "--collect-only", "-q", __file__
    )

    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "M3O_TEST_REDIS" in result.stderr
    assert "does not answer" in result.stderr


def test_the_test_command_starts_throwaway_servers_and_removes_them(own_tmp: Path) -> None:
    result = run_pytest(
        {"M3O_TEST_THROWAWAY": "1", "TMPDIR": str(own_tmp)}, "--collect-only", __file__
    )

    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    urls = re.findall(r"throwaway server at (\S+)", result.stdout)
    assert len(urls) == 2, result.stdout  # PostgreSQL and Redis
    assert all(refused(port_of(url)) for url in urls)  # stopped
    assert list(own_tmp.iterdir()) == []  # and removed
