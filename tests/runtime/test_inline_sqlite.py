"""SQLite run on the event loop's thread (``m3o.runtime.store.inline_sqlite``): a database
another process holds for writing is waited for without blocking the loop, up to the busy
timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.store import create_engine, sqlite_url


@pytest.fixture(name="path")
def path_fixture(tmp_path: Path) -> Path:
    path = tmp_path / "inline.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    return path


@pytest.fixture(name="engine")
async def engine_fixture(path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(str(path)))
    try:
        yield engine
    finally:
        await engine.dispose()


class Writer:
    """Another process's write transaction on the file, ended on demand (from a thread, as
    another process would, independent of the loop)."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.execute("INSERT INTO t VALUES (1)")

    def commit_after(self, seconds: float) -> threading.Thread:
        def commit() -> None:
            time.sleep(seconds)
            self._connection.execute("COMMIT")

        thread = threading.Thread(target=commit)
        thread.start()
        return thread

    def close(self) -> None:
        self._connection.close()


@pytest.fixture(name="writer")
def writer_fixture(path: Path) -> Iterator[Writer]:
    writer = Writer(path)
    try:
        yield writer
    finally:
        writer.close()


async def test_statements_run_on_the_loops_thread(engine: AsyncEngine) -> None:
    threads_before = threading.active_count()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (2)"))
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    assert threading.active_count() == threads_before  # no driver thread


async def test_a_busy_database_is_waited_for_while_the_loop_runs(
    engine: AsyncEngine, writer: Writer
) -> None:
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(ticking())
    committer = writer.commit_after(0.5)
    try:
        async with engine.begin() as conn:  # BEGIN IMMEDIATE: busy until the writer commits
            await conn.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        ticker.cancel()
        committer.join()
    assert ticks >= 10  # the loop went on while the transaction waited
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2


async def test_a_database_busy_past_the_timeout_is_an_error(
    path: Path, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("m3o.runtime.store.SQLITE_BUSY_TIMEOUT_MS", 300)
    engine = create_engine(sqlite_url(str(path)))
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        await engine.dispose()
    assert 0.25 <= time.monotonic() - started < 10
