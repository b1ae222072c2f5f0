"""SQLite run on the event loop's thread (``m3o.runtime.store.inline_sqlite``): a database
another process holds for writing is waited for without blocking the loop, up to the busy
timeout."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.blocking import run_blocking
from m3o.runtime.store import UTCDateTime, create_engine, sqlite_url
from m3o.runtime.store.inline_sqlite import (
    WalCheckpoints,
    driver_transaction,
    stored_by_sqlalchemy,
    utc_text,
)


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


async def test_a_connection_given_back_mid_transaction_is_rolled_back(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("BEGIN IMMEDIATE")
        await raw.execute("INSERT INTO t VALUES (7)")  # never committed

    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert not await raw.run(lambda db: db.in_transaction)
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_driver_transaction_commits_or_rolls_back_and_gives_the_connection_back(
    engine: AsyncEngine,
) -> None:
    def insert(n: int) -> Callable[[sqlite3.Connection], None]:
        return lambda db: db.execute("INSERT INTO t VALUES (?)", (n,)) and None

    async with driver_transaction(engine) as db:
        await db.run(insert(1))
    with pytest.raises(RuntimeError):
        async with driver_transaction(engine) as db:
            await db.run(insert(2))
            raise RuntimeError("undone")
    holding = asyncio.Event()

    async def cancelled_inside() -> None:
        async with driver_transaction(engine) as db:
            await db.run(insert(3))
            holding.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(cancelled_inside())
    await holding.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    async with asyncio.timeout(5):  # the one connection is back in the pool at once
        async with driver_transaction(engine) as db:
            await db.run(insert(4))
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
    assert found == [1, 4]


async def test_a_driver_transaction_on_a_missing_database_is_a_sqlalchemy_error(
    tmp_path: Path,
) -> None:
    engine = create_engine(sqlite_url(str(tmp_path / "missing" / "m3o.db")))
    try:
        with pytest.raises(OperationalError, match="unable to open"):
            async with driver_transaction(engine):
                pass
    finally:
        await engine.dispose()


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


async def test_commits_leave_checkpoints_to_the_background_when_asked(path: Path) -> None:
    engine = create_engine(sqlite_url(str(path)), checkpoint_in_background=True)
    checkpoints = WalCheckpoints(path)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 0
        for n in range(50):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        busy, frames, copied = await run_blocking(checkpoints.checkpoint)
        assert (busy, copied) == (0, frames) and frames > 0
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 50
    finally:
        await engine.dispose()
        await checkpoints.stop()


async def test_by_default_commits_checkpoint_as_sqlite_does(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 1000


async def test_background_checkpoints_run_until_stopped(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = WalCheckpoints(path, every=0.01)
    rounds: list[tuple[int, int, int]] = []
    checkpoint = checkpoints.checkpoint

    def counted() -> tuple[int, int, int]:
        rounds.append(checkpoint())
        return rounds[-1]

    monkeypatch.setattr(checkpoints, "checkpoint", counted)
    checkpoints.start()
    try:
        deadline = time.monotonic() + 30
        while len(rounds) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(rounds) >= 3
    finally:
        await checkpoints.stop()
    stopped = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == stopped  # nothing after stop (which ran the last one)


class SteadyWriter:
    """Writes a row of 64 KB at a time on a thread, with a short pause between commits (as
    a busy server does), until stopped: a passive checkpoint of what a round wrote takes
    longer than a pause, so commits always land during it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self.written = 0
        self._thread = threading.Thread(target=self._write)

    def __enter__(self) -> SteadyWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self) -> None:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        db.execute("PRAGMA wal_autocheckpoint=0")
        try:
            while not self._stop.is_set():
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t VALUES (?)", (bytes(65536),))
                db.execute("COMMIT")
                self.written += 1
                time.sleep(0.0005)
        finally:
            db.close()


async def test_a_long_log_starts_over_while_writes_go_on(path: Path) -> None:
    """Passive checkpoints alone let the log start over only when writes pause; past
    ``restart_after`` frames a round also restarts it, under steady writes. Its file is not
    shrunk meanwhile: that held writers back for hundreds of ms with a large log."""
    checkpoints = WalCheckpoints(path, restart_after=50, shrink_after=0)
    logs: list[int] = []
    sizes: list[int] = []
    try:
        with SteadyWriter(path) as writer:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (len(logs) > 1 and logs[-1] < logs[-2]):
                await asyncio.sleep(0.05)
                _busy, frames, _copied = await run_blocking(checkpoints.checkpoint)
                logs.append(frames)
                sizes.append(_log_bytes(path))
        assert len(logs) > 1 and logs[-1] < logs[-2], logs
        assert writer.written > 0
        assert all(size > 0 for size in sizes), sizes
    finally:
        await checkpoints.stop()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == writer.written


def _log_bytes(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def _write_rows(path: Path, rows: int) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA wal_autocheckpoint=0")
        for _ in range(rows):
            db.execute("INSERT INTO t VALUES (?)", (bytes(65536),))


async def test_a_log_idle_long_enough_and_over_the_limit_is_emptied(path: Path) -> None:
    clock = [0.0]
    checkpoints = WalCheckpoints(
        path, shrink_after=64 * 65536, shrink_when_idle_for=10, clock=lambda: clock[0]
    )

    async def round_at(seconds: float) -> None:
        clock[0] = seconds
        await run_blocking(checkpoints.checkpoint)

    try:
        _write_rows(path, 8)  # well under the limit: kept however long it is idle
        for second in (0, 1, 20, 40):
            await round_at(second)
        assert _log_bytes(path) > 0

        _write_rows(path, 100)  # over it
        await round_at(41)  # copies it: writes may still come
        await round_at(42)  # idle from here on
        await round_at(51.9)
        assert _log_bytes(path) > 64 * 65536  # not idle long enough yet
        _write_rows(path, 1)  # a write starts the quiet spell over
        await round_at(52)
        await round_at(53)
        await round_at(62.9)
        assert _log_bytes(path) > 64 * 65536
        await round_at(63)
        assert _log_bytes(path) == 0
    finally:
        await checkpoints.stop()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 109


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 6, 16, 7, 56, 595_662, tzinfo=UTC),
        datetime(2026, 12, 6, 16, 7, 56, tzinfo=UTC),  # no microseconds: still six digits
        datetime(5, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year below 1000: four digits
        datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5))),  # the day before
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
    ],
)
def test_utc_text_is_the_text_sqlalchemy_stores(value: datetime) -> None:
    column = Column("at", UTCDateTime)
    dialect = sqlite_dialect.dialect()
    by_sqlalchemy = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert by_sqlalchemy is not None
    assert utc_text(value) == by_sqlalchemy(value)
    assert stored_by_sqlalchemy(column)(value) == by_sqlalchemy(value)


def test_utc_text_keeps_none_and_refuses_a_naive_time() -> None:
    assert utc_text(None) is None
    with pytest.raises(ValueError, match="naive"):
        utc_text(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time refused
