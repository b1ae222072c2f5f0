"""The database: one SQLAlchemy async engine per process, SQLite or PostgreSQL.

- ``local`` profile: a SQLite file through SQLAlchemy's aiosqlite dialect, its statements
  run on the event loop's own thread (``inline_sqlite``: no driver thread, no hand-over per
  statement), in WAL mode with ``synchronous=NORMAL``, every transaction begun
  ``IMMEDIATE`` so concurrent writers queue instead of failing when a read lock cannot be
  upgraded. The process keeps one connection, so its transactions queue on the pool (an
  asyncio wait) rather than on SQLite's busy handler: under concurrent calls this halved
  the gateway's p99 (``benchmarks/gateway.py``). Another process writing the same file
  (``m3o migrate``, ``m3o token``) is waited for with ``asyncio.sleep`` up to the busy
  timeout;
- ``platform`` profile: PostgreSQL through asyncpg.

Each service declares its tables on a ``MetaData`` of its own in ``tables.py``, names
prefixed with the service's name. Rows of tables that grow with every call take ids made in
time order (``ids.time_ordered_id``), as the gateway's request ids are. Migrations
(Alembic, one history) live in ``m3o.migrations``.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from m3o.runtime.config.values import sqlite_url
from m3o.runtime.store import inline_sqlite

__all__ = [
    "NAMING_CONVENTION",
    "SessionFactory",
    "UTCDateTime",
    "create_engine",
    "in_one_transaction",
    "inline_engine",
    "is_sqlite",
    "new_metadata",
    "session_factory",
    "sqlite_url",
    "transaction",
]

SessionFactory = async_sessionmaker[AsyncSession]

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
STATEMENT_TIMEOUT_MS = 30_000


def new_metadata() -> MetaData:
    """A MetaData with the project's constraint naming convention (stable migrations)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may rest before it is pinged as it is taken."""


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    schema: str | None = None,
    checkpoint_in_background: bool = False,
    ping_after_idle: float = PING_AFTER_IDLE,
) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``).

    ``schema`` (PostgreSQL only) puts every table in that schema via ``search_path``.
    ``pool_size`` is PostgreSQL's; a SQLite engine keeps one connection (see above).
    ``ping_after_idle`` (PostgreSQL): see :func:`_check_on_checkout`.
    Statement parameters never appear in errors (they may hold codes, tokens, emails).
    ``checkpoint_in_background`` (SQLite): commits never checkpoint the log; the caller runs
    :class:`~m3o.runtime.store.inline_sqlite.WalCheckpoints` on the file while the engine
    lives (else the log grows).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            # Statements run on the loop's thread, not aiosqlite's (see inline_sqlite).
            async_creator=functools.partial(
                inline_sqlite.connect,
                parsed.database or ":memory:",
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                uri=str(parsed.query.get("uri", "")).lower() == "true",
            ),
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            # reset by the connection itself, at once (see _configure_sqlite)
            pool_reset_on_return=None,
            hide_parameters=True,
        )
        _configure_sqlite(engine, autocheckpoint=not checkpoint_in_background)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    server_settings = {"statement_timeout": str(STATEMENT_TIMEOUT_MS)}
    if schema is not None:
        server_settings["search_path"] = schema
    engine = create_async_engine(
        parsed,
        pool_size=pool_size,
        hide_parameters=True,
        connect_args={
            "timeout": 10,
            "command_timeout": STATEMENT_TIMEOUT_MS / 1000,
            "server_settings": server_settings,
        },
    )
    _check_on_checkout(engine, ping_after_idle)
    return engine


_RETURNED = "m3o_returned"


def _check_on_checkout(engine: AsyncEngine, ping_after_idle: float) -> None:
    """A pooled connection is checked as it is taken: one the server closed (a restart, a
    failover, ``pg_terminate_backend``; the driver sees the socket close while the loop
    runs) is replaced, and one that rested ``ping_after_idle`` seconds or more is pinged
    first (a connection dropped without a word, by a firewall say) and replaced if the
    ping fails.

    SQLAlchemy's ``pool_pre_ping`` pings every connection it hands out, and on asyncpg a
    ping is three round trips (begin, an empty query, rollback): measured, 13 % of the
    usage service's CPU under the gateway benchmark's load, for connections used a moment
    before.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _rested(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed the connection")
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < ping_after_idle:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # whatever failed, the connection is not usable
            raise DisconnectionError(f"the ping failed: {type(exc).__name__}") from exc


_BEGIN = "BEGIN IMMEDIATE"


def _configure_sqlite(engine: AsyncEngine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        # What the pool's rollback-on-return did, without awaiting the driver's rollback in
        # a greenlet for every connection given back (SQLAlchemy's documented custom reset).
        dbapi_connection.driver_connection.reset()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Straight to the driver: through SQLAlchemy's execution this was a fifth of the
        # smallest transaction's time.
        dbapi = connection.dialect.loaded_dbapi
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_BEGIN)
        except dbapi.Error as error:  # as SQLAlchemy's own execution would raise it
            raise DBAPIError.instance(
                _BEGIN, (), error, dbapi.Error, hide_parameters=True, dialect=connection.dialect
            ) from error
        finally:
            cursor.close()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def inline_engine(sessions: SessionFactory) -> AsyncEngine | None:
    """The engine of ``sessions`` when it is SQLite's (statements run on the loop's thread,
    see :mod:`~m3o.runtime.store.inline_sqlite`), for a hot path's statements sent to the
    driver with :func:`~m3o.runtime.store.inline_sqlite.driver_transaction`; None on
    PostgreSQL."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncEngine) and is_sqlite(bind):
        return bind
    return None


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session


async def in_one_transaction(
    sessions: SessionFactory,
    on_driver: Callable[[sqlite3.Connection], T],
    in_session: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """A hot path's writes in one transaction, the same rows either way: on SQLite
    (:func:`inline_engine`) ``on_driver`` with the driver's own connection, in a
    :func:`~m3o.runtime.store.inline_sqlite.driver_transaction`; elsewhere ``in_session``,
    in a :func:`transaction`. What the one run returns."""
    engine = inline_engine(sessions)
    if engine is not None:
        async with inline_sqlite.driver_transaction(engine) as db:
            result: T = await db.run(on_driver)
            return result
    async with transaction(sessions) as session:
        return await in_session(session)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases (SQLite drops the zone).

    Values are stored in UTC with a fixed format, so SQLite compares them correctly as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
