"""SQLite on the event loop's own thread, for SQLAlchemy's ``aiosqlite`` dialect.

aiosqlite runs every call (execute, fetch, commit, close) on a thread of its own and hands
the result back to the loop: four crossings for the smallest transaction, each a thread
wake-up and a GIL hand-over. On the 2-core machine of the benchmarks a transaction of one
upsert took 0.35 ms that way (1.3 ms through SQLAlchemy's session) against 7 µs run inline:
the crossings, not SQLite, were the cost of every transaction of ``m3o serve``. SQLite on a
local file in WAL mode with ``synchronous=NORMAL`` does not wait for the disk on commit, so
its statements take microseconds; this module runs them where they are called.

It is the connection SQLAlchemy's ``AsyncAdapt_aiosqlite_connection`` expects (the
aiosqlite API: coroutines for every call), given to ``create_async_engine`` as its
``async_creator``. One thing waits: a database another process holds for writing
(``SQLITE_BUSY``, e.g. ``m3o migrate`` running). SQLite's own busy handler would sleep on
the loop's thread, so it is turned off (``PRAGMA busy_timeout`` is taken over) and a busy
statement is retried here with ``asyncio.sleep`` until the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from m3o.runtime.blocking import run_blocking
from m3o.runtime.logging import get_logger

__all__ = [
    "RESTART_AFTER_FRAMES",
    "SHRINK_AFTER_BYTES",
    "SHRINK_WHEN_IDLE_FOR",
    "InlineConnection",
    "WalCheckpoints",
    "connect",
    "driver_transaction",
    "in_driver_batches",
    "parameter_marks",
    "stored_by_sqlalchemy",
    "utc_text",
]

_log = get_logger(__name__)

_BUSY_TIMEOUT = re.compile(r"^\s*PRAGMA\s+busy_timeout\s*=\s*(\d+)\s*$", re.IGNORECASE)
_RETRY_FIRST = 0.001
_RETRY_MAX = 0.05
_T = TypeVar("_T")


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    ) or str(error).startswith("database is locked")


_SQLITE = sqlite_dialect.dialect()


def stored_by_sqlalchemy(column: ColumnElement[Any]) -> Callable[[Any], Any]:
    """How SQLAlchemy binds ``column``'s values for SQLite (a datetime: UTC in its fixed text
    form), for statements sent to the driver directly: rows written either way compare
    alike in SQL and read back alike.

    A :class:`~m3o.runtime.store.UTCDateTime` gets :func:`utc_text`, which writes the same
    text in half the time (every call's event carries a time)."""
    from m3o.runtime.store import UTCDateTime  # here: that package imports this module

    if isinstance(column.type, UTCDateTime):
        return utc_text
    process = column.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
    return process if process is not None else _as_is


def utc_text(value: datetime | None) -> str | None:
    """A timezone-aware time as SQLAlchemy stores a ``UTCDateTime`` on SQLite: in UTC,
    ``YYYY-MM-DD HH:MM:SS.ffffff``; None stays None, a naive time is refused."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the fastest way here
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _as_is(value: Any) -> Any:
    return value


_DRIVER_ROWS = 500
"""Rows (or keys) per statement sent to the driver directly: at six values a row, well
under SQLite's limit of bound parameters (32,766)."""


def in_driver_batches(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``items`` in slices of at most 500, one statement's worth each."""
    for first in range(0, len(items), _DRIVER_ROWS):
        yield items[first : first + _DRIVER_ROWS]


def parameter_marks(count: int, mark: str = "?") -> str:
    """``count`` parameter marks (or ``mark`` groups such as ``(?, ?)``), comma-separated."""
    return ", ".join([mark] * count)


class _Retrying:
    """Runs a statement, waiting (without blocking the loop) while the database is busy."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def run(self, statement: Callable[[], Any]) -> Any:
        deadline: float | None = None
        delay = _RETRY_FIRST
        while True:
            try:
                return statement()
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                if now >= deadline:
                    raise
                await asyncio.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _RETRY_MAX)


class _Cursor:
    """An aiosqlite-style cursor over a :class:`sqlite3.Cursor`."""

    def __init__(self, cursor: sqlite3.Cursor, retrying: _Retrying) -> None:
        self._cursor = cursor
        self._retrying = retrying

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        match = _BUSY_TIMEOUT.match(sql)
        if match is not None:
            self._retrying.timeout = int(match.group(1)) / 1000
            sql = "PRAGMA busy_timeout=0"
        params = () if parameters is None else parameters
        await self._retrying.run(lambda: self._cursor.execute(sql, params))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> _Cursor:
        rows = list(parameters)
        await self._retrying.run(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()


class _InlineQueue:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's adapter uses to set the
    isolation level: the function runs now."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as error:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(error)
        else:
            future.set_result(result)


class InlineConnection:
    """An aiosqlite-style connection over a :class:`sqlite3.Connection`, run inline."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn: sqlite3.Connection | None = connection
        self._tx = _InlineQueue()
        self._retrying = _Retrying(busy_timeout)

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._open().isolation_level = value

    def cursor(self) -> _Cursor:
        """A cursor (SQLAlchemy enters it with ``async with``, as aiosqlite's)."""
        return _Cursor(self._open().cursor(), self._retrying)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        connection = self._open()
        await self._retrying.run(connection.commit)

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` on the driver's own connection, now, waiting (without blocking the loop)
        while another process holds the database: for a hot path that has no use for
        SQLAlchemy's execution layer (the owned counters' group commit)."""
        connection = self._open()
        result: _T = await self._retrying.run(lambda: work(connection))
        return result

    async def rollback(self) -> None:
        self._open().rollback()

    def reset(self) -> None:
        """Roll back what a borrower left open, as the connection goes back to the pool:
        at once, where SQLAlchemy's own reset would await :meth:`rollback` (a greenlet
        switch for every connection returned, nearly always with nothing to undo)."""
        connection = self._conn
        if connection is not None and connection.in_transaction:
            connection.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (SQLAlchemy's terminate)."""
        connection, self._conn = self._conn, None
        if connection is not None:
            connection.close()


@contextlib.asynccontextmanager
async def driver_transaction(engine: AsyncEngine) -> AsyncIterator[InlineConnection]:
    """One ``BEGIN IMMEDIATE`` .. ``COMMIT`` on ``engine``'s connection (an engine of
    :func:`~m3o.runtime.store.create_engine` for SQLite: one connection, so this is the
    database's turn), its statements sent to SQLite's driver with
    :meth:`InlineConnection.run`: for hot paths whose statements take microseconds in
    SQLite and a millisecond through SQLAlchemy's session and execution layer. Rolled back
    if the block raises.

    The connection is taken from the pool directly (the wait for it, if another holds it,
    is the one step run in SQLAlchemy's greenlet) and given back synchronously (the
    engine's pool resets connections with :meth:`InlineConnection.reset`): 27 µs for both
    against 60 µs through ``engine.connect()``, whose three greenlet runs and shielded
    close cost more than most of these transactions' statements."""
    try:
        pooled = await greenlet_spawn(engine.sync_engine.raw_connection)
    except sqlite3.Error as error:  # as engine.connect() raises it: a SQLAlchemy error
        raise DBAPIError.instance(
            None, None, error, sqlite3.Error, hide_parameters=True, dialect=engine.dialect
        ) from error
    try:
        raw = pooled.driver_connection
        if not isinstance(raw, InlineConnection):
            raise TypeError("a driver transaction needs an engine of inline SQLite connections")
        await raw.run(_begin)
        try:
            yield raw
            await raw.run(_commit)
        except BaseException:
            await raw.run(_rollback)
            raise
    finally:
        pooled.close()  # synchronous: a cancelled task cannot keep the connection


def _begin(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")


def _commit(db: sqlite3.Connection) -> None:
    db.execute("COMMIT")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


async def connect(database: str, *, timeout: float, uri: bool = False) -> InlineConnection:
    """Open ``database`` (a path, ``:memory:``, or a ``file:`` URI with ``uri``).

    ``check_same_thread`` is off: the connection is used on the loop's thread only, but
    SQLAlchemy may close it from a garbage-collection callback elsewhere.
    """
    connection = sqlite3.connect(database, timeout=0, uri=uri, check_same_thread=False)
    return InlineConnection(connection, timeout)


RESTART_AFTER_FRAMES = 262_144
"""Log frames (pages of 4 KB: 1 GB) from which :class:`WalCheckpoints` restarts the log."""
SHRINK_AFTER_BYTES = 64 * 1024 * 1024
"""Size of an idle log's file past which :class:`WalCheckpoints` empties it."""
SHRINK_WHEN_IDLE_FOR = 10.0
"""Seconds without a write after which :class:`WalCheckpoints` empties a large log."""


class WalCheckpoints:
    """Checkpoints of a WAL database's log, on a thread of their own.

    SQLite checkpoints by itself when a commit finds the log past 1,000 pages: that commit
    then copies the log into the database and waits for the disk, on the loop's thread here
    (measured: the commits that did so took up to 15 ms, the p99 of ``m3o serve``'s calls).
    An engine made with ``create_engine(..., checkpoint_in_background=True)`` leaves that
    out (``PRAGMA wal_autocheckpoint=0``), and this checkpoints every ``every`` seconds on a
    connection of its own, on a worker thread:

    - ``PASSIVE`` each round: copies what no reader still needs and never blocks a writer.
      Alone it lets the log start over only when writes pause: a log restarts when a
      writer begins with every frame copied, and frames written during a copy are not.
      Under steady load (one client calling without a pause is enough) the log grew by
      about 50 MB a second, 640 MB after 13 s of ``benchmarks/gateway.py``'s calls.
    - ``RESTART`` once the log holds ``restart_after`` frames: it copies what was written
      during the passive copy while holding writers back, and makes the next writer start
      the log over from its beginning; it never waits (a writer or reader under way makes
      it give up until the next round). Writers waited 7 ms for it with a 1 GB log. So the
      log's file stays bounded (at about :data:`RESTART_AFTER_FRAMES` pages: 1 GB, about
      20 s of that load) and a busy server pays one such short wait every 20 s or so.
      ``TRUNCATE`` did the same and shrank the file too, but shrinking a file of 1 GB held
      writers back for 310 ms (the p99 of a one-connection run that met it: 230 ms).
    - ``TRUNCATE`` when the log has been idle for ``shrink_when_idle_for`` seconds (every
      frame copied, none written) and its file is over ``shrink_after`` bytes: the disk
      space comes back once the load is over. A writer arriving meanwhile waits for it
      (127 ms with a 500 MB file), hence the wait for a quiet spell.
    """

    def __init__(
        self,
        path: Path,
        *,
        every: float = 0.5,
        restart_after: int = RESTART_AFTER_FRAMES,
        shrink_after: int = SHRINK_AFTER_BYTES,
        shrink_when_idle_for: float = SHRINK_WHEN_IDLE_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._every = every
        self._restart_after = restart_after
        self._shrink_after = shrink_after
        self._shrink_when_idle_for = shrink_when_idle_for
        self._clock = clock
        self._last_frames = -1
        self._idle_since: float | None = None
        self._connection: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sqlite-checkpoints"
            )

    async def stop(self) -> None:
        """Stop, after one last checkpoint."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(sqlite3.Error):
            await run_blocking(self.checkpoint)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await run_blocking(self.checkpoint)
            except sqlite3.Error as error:  # the next round tries again
                _log.warning("sqlite.checkpoint_failed", error=str(error))

    def checkpoint(self) -> tuple[int, int, int]:
        """One round (blocking): a passive checkpoint, then one restarting the log when it
        is long, or emptying its file when it is idle and large; SQLite's answer to the
        last: (busy, log frames, frames copied)."""
        found = self._checkpoint("PASSIVE")
        busy, frames, copied = found
        now = self._clock()
        if busy or frames != copied or frames != self._last_frames:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        self._last_frames = frames
        if frames >= self._restart_after:
            found = self._checkpoint("RESTART")
        elif (
            self._idle_since is not None
            and now - self._idle_since >= self._shrink_when_idle_for
            and frames > 0
            and self._log_bytes() > self._shrink_after
        ):
            found = self._checkpoint("TRUNCATE")
            self._idle_since = None
        return found

    def _log_bytes(self) -> int:
        try:
            return os.stat(f"{self._path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _checkpoint(self, mode: str) -> tuple[int, int, int]:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self._path, timeout=0, isolation_level=None, check_same_thread=False
            )
        [row] = self._connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        return int(row[0]), int(row[1]), int(row[2])
