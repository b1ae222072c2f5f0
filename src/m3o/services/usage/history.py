"""The daily history and the record of counted events: reading and writing their tables.

Every function works inside the caller's session, so the caller decides the transaction:
the request recorder claims event ids and adds their counts in one. On SQLite (``m3o
serve``), the recorder's two writes also come as statements for the driver's own
connection (``*_on_driver``): the same rows, in a transaction of
:func:`~m3o.runtime.store.inline_sqlite.driver_transaction`, because there they run on the
loop that serves the calls, and a batch of request events took 2.3 ms through SQLAlchemy's
session, most of it not SQLite's.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, delete, func, not_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.store.inline_sqlite import (
    in_driver_batches,
    parameter_marks,
    stored_by_sqlalchemy,
)
from m3o.services.usage.tables import history, recorded_events

__all__ = [
    "FREE_PATH",
    "CountKey",
    "DayCount",
    "PathTotal",
    "add_counts",
    "add_counts_on_driver",
    "claim_events",
    "claim_events_on_driver",
    "delete_customer",
    "is_api_path",
    "is_endpoint_path",
    "month_totals",
    "purge_history",
    "purge_recorded_events",
    "series",
    "totals_by_customer",
]

FREE_PATH = "$totalfree"
"""The path counting calls charged ``free``: it begins with ``$``, so no API name can
collide with it and the API-level readers (which skip names holding ``$``) never see it."""

_CHUNK = 200
"""Rows per statement: far below SQLite's limit of bound parameters."""


@dataclass(frozen=True, slots=True, order=True)
class CountKey:
    """One history row's key."""

    customer_id: str
    day: date
    path: str


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    path: str
    requests: int


@dataclass(frozen=True, slots=True)
class PathTotal:
    customer_id: str
    path: str
    requests: int


def is_api_path(path: str) -> bool:
    """``helloworld``, not ``helloworld$Helloworld.Call`` nor ``$totalfree``."""
    return "$" not in path


def is_endpoint_path(path: str) -> bool:
    """``helloworld$Helloworld.Call``: an API, a ``$`` and an endpoint."""
    api, separator, endpoint = path.partition("$")
    return bool(api and separator and endpoint)


def _insert_for(dialect: str, table: Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@functools.cache
def _claiming(dialect: str) -> Any:
    """The event ids' insert returning those that were new, built once per dialect (its
    compiled form is then found by the cache key kept on it, not computed per batch)."""
    return (
        _insert_for(dialect, recorded_events)
        .on_conflict_do_nothing(index_elements=[recorded_events.c.event_id])
        .returning(recorded_events.c.event_id)
    )


@functools.cache
def _adding(dialect: str) -> Any:
    """The history rows' upsert adding counts, built once per dialect."""
    insert = _insert_for(dialect, history)
    return insert.on_conflict_do_update(
        index_elements=[history.c.customer_id, history.c.day, history.c.path],
        set_={"requests": history.c.requests + insert.excluded.requests},
    )


_CLAIM_ARRAY = (
    postgresql.insert(recorded_events)
    .from_select(
        ["event_id", "recorded"],
        select(
            func.unnest(bindparam("ids", type_=postgresql.ARRAY(String))),
            bindparam("recorded", type_=recorded_events.c.recorded.type),
        ),
    )
    .on_conflict_do_nothing(index_elements=[recorded_events.c.event_id])
    .returning(recorded_events.c.event_id)
)
"""PostgreSQL: the ids' insert from one array, in the array's (sorted) order, returning
those that were new."""


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def claim_events(session: AsyncSession, event_ids: Iterable[str], now: datetime) -> set[str]:
    """Record ``event_ids`` as counted; returns those that were not recorded before.

    On PostgreSQL a concurrent transaction claiming the same id waits for this one and then
    finds it taken, so an event is claimed once even when delivered twice at once.
    """
    claimed: set[str] = set()
    ids = sorted(set(event_ids))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # The ids as one array parameter: a batch of 256 bound as 512 parameters of an
        # insert of many rows cost the consumer 14 µs an event in SQLAlchemy and asyncpg.
        found = await session.execute(_CLAIM_ARRAY, {"ids": ids, "recorded": now})
        claimed.update(str(row[0]) for row in found)
        return claimed
    statement = _claiming(dialect)
    for chunk in _chunks(ids):
        rows = [{"event_id": event_id, "recorded": now} for event_id in chunk]
        claimed.update(str(row[0]) for row in await session.execute(statement, rows))
    return claimed


async def add_counts(session: AsyncSession, counts: Mapping[CountKey, int]) -> None:
    """Add ``counts`` to the history rows, creating the missing ones.

    Rows are written in key order, so concurrent writers lock them in the same order and
    cannot deadlock.
    """
    rows = [
        {"customer_id": k.customer_id, "day": k.day, "path": k.path, "requests": n}
        for k, n in sorted(counts.items())
        if n
    ]
    statement = _adding(session.get_bind().dialect.name)
    for chunk in _chunks(rows):
        await session.execute(statement, list(chunk))


_CLAIM_SQL = (
    f"INSERT INTO {recorded_events.name} (event_id, recorded) VALUES {{rows}} "  # noqa: S608
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_ADD_SQL = (
    f"INSERT INTO {history.name} (customer_id, day, path, requests) VALUES {{rows}} "  # noqa: S608
    "ON CONFLICT (customer_id, day, path) DO UPDATE SET requests = requests + excluded.requests"
)
_STORED_RECORDED = stored_by_sqlalchemy(recorded_events.c.recorded)
_STORED_DAY = stored_by_sqlalchemy(history.c.day)


def claim_events_on_driver(
    db: sqlite3.Connection, event_ids: Iterable[str], now: datetime
) -> set[str]:
    """:func:`claim_events` on SQLite's own connection, inside its transaction."""
    claimed: set[str] = set()
    recorded = _STORED_RECORDED(now)
    for part in in_driver_batches(sorted(set(event_ids))):
        values = [value for event_id in part for value in (event_id, recorded)]
        rows = db.execute(_CLAIM_SQL.format(rows=parameter_marks(len(part), "(?, ?)")), values)
        claimed.update(str(row[0]) for row in rows.fetchall())
    return claimed


def add_counts_on_driver(db: sqlite3.Connection, counts: Mapping[CountKey, int]) -> None:
    """:func:`add_counts` on SQLite's own connection, inside its transaction."""
    rows = [(k.customer_id, _STORED_DAY(k.day), k.path, n) for k, n in sorted(counts.items()) if n]
    for part in in_driver_batches(rows):
        values = [value for row in part for value in row]
        db.execute(_ADD_SQL.format(rows=parameter_marks(len(part), "(?, ?, ?, ?)")), values)


async def series(
    session: AsyncSession, customer_id: str, *, since: date | None = None
) -> list[DayCount]:
    """The history rows of ``customer_id`` (from the day ``since`` on), oldest day first."""
    query = (
        select(history.c.day, history.c.path, history.c.requests)
        .where(history.c.customer_id == customer_id)
        .order_by(history.c.day, history.c.path)
    )
    if since is not None:
        query = query.where(history.c.day >= since)
    return [DayCount(row.day, row.path, int(row.requests)) for row in await session.execute(query)]


async def month_totals(
    session: AsyncSession, first: date, last: date, customer_id: str | None = None
) -> list[PathTotal]:
    """Each customer's (or only ``customer_id``'s) totals per path over ``first``..``last``
    (inclusive), the global customer included."""
    query = (
        select(history.c.customer_id, history.c.path, func.sum(history.c.requests))
        .where(history.c.day >= first, history.c.day <= last)
        .group_by(history.c.customer_id, history.c.path)
        .order_by(history.c.customer_id, history.c.path)
    )
    if customer_id is not None:
        query = query.where(history.c.customer_id == customer_id)
    return [
        PathTotal(str(row[0]), str(row[1]), int(row[2])) for row in await session.execute(query)
    ]


async def totals_by_customer(session: AsyncSession, first: date, last: date) -> list[PathTotal]:
    """Each customer's totals per API (``<api>`` paths only) over ``first``..``last``
    (inclusive), the global customer included."""
    query = (
        select(history.c.customer_id, history.c.path, func.sum(history.c.requests))
        .where(
            history.c.day >= first,
            history.c.day <= last,
            not_(history.c.path.contains("$")),
        )
        .group_by(history.c.customer_id, history.c.path)
    )
    return [
        PathTotal(str(row[0]), str(row[1]), int(row[2])) for row in await session.execute(query)
    ]


async def delete_customer(session: AsyncSession, customer_id: str) -> int:
    """Remove ``customer_id``'s history; returns how many rows went."""
    result = await session.execute(delete(history).where(history.c.customer_id == customer_id))
    return _rowcount(result)


async def purge_history(session: AsyncSession, before: date) -> int:
    """Delete the history of the days before ``before``; returns how many rows went."""
    result = await session.execute(delete(history).where(history.c.day < before))
    return _rowcount(result)


async def purge_recorded_events(session: AsyncSession, before: datetime) -> int:
    """Forget the events counted before ``before``; returns how many went."""
    result = await session.execute(
        delete(recorded_events).where(recorded_events.c.recorded < before)
    )
    return _rowcount(result)


def _path_total(row: Any) -> PathTotal:
    return PathTotal(str(row[0]), str(row[1]), int(row[2]))


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
