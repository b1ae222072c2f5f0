"""Admission on the SQL counter store: the rules of :mod:`m3o.runtime.counters.admission` in Python,
run inside one transaction of :class:`~m3o.runtime.counters.sqlite.SqlCounterStore`.

A batch (one :meth:`admit`, a whole ``admit_many``, one ``release``) costs two statements:

1. :func:`lock_rows`: one multi-row upsert over every key the batch touches, in sorted key
   order, that inserts a placeholder row for a missing key and otherwise changes nothing,
   returning each row. On PostgreSQL ``ON CONFLICT DO UPDATE`` locks every row, existing
   or new, until the transaction ends, and the sorted order keeps two batches from
   deadlocking; on SQLite the transaction (``BEGIN IMMEDIATE``) already holds the
   database. No other transaction can then delete or change those rows under us.
2. the decisions are taken in memory (:class:`Rows`, :func:`decide`, :func:`undo`), each
   seeing what the ones before it reserved, and :func:`write_rows` writes the changed rows
   back in one multi-row upsert.

Both upserts pass their rows as parameter sets, which SQLAlchemy sends in one call of the
driver from a compiled form it caches (a multi-row statement where rows come back, an
``executemany`` otherwise); a statement built with ``values([..])`` has no cache key and
was compiled anew every time (most of a batch's CPU on SQLite).

A placeholder expired long ago (:data:`PLACEHOLDER_EXPIRY`), so it reads as missing to
every operation of the store, whatever its clock says, and ``purge_expired`` removes the
ones no write replaced. The expiry rules are the store's: a row past ``expires_at`` is
missing; a counter an admission creates gets the request's ``monthly_ttl`` (the rate
window: ``rate_window``; cumulative debits: none); a counter that exists keeps its expiry.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from m3o.runtime.counters.admission import (
    FREE,
    AdmissionDecision,
    AdmissionRequest,
    Verdict,
)
from m3o.runtime.counters.tables import counters
from m3o.runtime.store.inline_sqlite import (
    in_driver_batches,
    parameter_marks,
    stored_by_sqlalchemy,
)

__all__ = [
    "PLACEHOLDER_EXPIRY",
    "Row",
    "Rows",
    "admission_keys",
    "decide",
    "lock_rows",
    "stored_utc",
    "undo",
    "write_rows",
    "write_rows_on_driver",
]

_T = counters.c

PLACEHOLDER_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)
"""The expiry of a row inserted only to be locked: always in the past."""


@dataclass(slots=True)
class Row:
    """One counter: its value and when it expires (None: never)."""

    count: int
    expires_at: datetime | None


class Rows:
    """The locked rows of one batch as of ``now``, changed in memory."""

    def __init__(self, rows: dict[str, Row], now: datetime) -> None:
        self._rows = rows
        self._now = now
        self.changed: set[str] = set()
        self.created: set[str] = set()
        """Keys :meth:`add` started (missing or expired before)."""

    @property
    def now(self) -> datetime:
        return self._now

    def live(self, key: str) -> int | None:
        """The counter's value; None when missing or expired."""
        row = self._rows.get(key)
        if row is None or (row.expires_at is not None and row.expires_at <= self._now):
            return None
        return row.count

    def value(self, key: str) -> int:
        live = self.live(key)
        return 0 if live is None else live

    def window(self, key: str) -> tuple[int, datetime | None]:
        """The count and end of a running rate window; ``(0, None)`` when none runs (a row
        without expiry was not written by a window: the next hit starts one, as ``hit``
        does)."""
        row = self._rows.get(key)
        if row is None or row.expires_at is None or row.expires_at <= self._now:
            return 0, None
        return row.count, row.expires_at

    def put(self, key: str, count: int, expires_at: datetime | None) -> None:
        self._rows[key] = Row(count, expires_at)
        self.changed.add(key)

    def add(self, key: str, amount: int, ttl: timedelta | None) -> None:
        """Add to a counter; one that is missing starts at ``amount`` with ``ttl``.

        Written out rather than through :meth:`live` and :meth:`put`: an admission adds to
        four counters, and the calls were a good part of its time."""
        now = self._now
        row = self._rows.get(key)
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            self._rows[key] = Row(amount, None if ttl is None else now + ttl)
            self.created.add(key)
        else:
            self._rows[key] = Row(row.count + amount, row.expires_at)
        self.changed.add(key)

    def add_existing(self, key: str, amount: int) -> None:
        """Add to a counter that exists; a missing one stays missing."""
        if self.live(key) is not None:
            self.add(key, amount, None)

    def written(self) -> list[dict[str, Any]]:
        """The changed rows, as values for :func:`write_rows`, in key order."""
        return [
            {
                "key": key,
                "count": self._rows[key].count,
                "text": None,
                "expires_at": self._rows[key].expires_at,
            }
            for key in sorted(self.changed)
        ]


def admission_keys(request: AdmissionRequest) -> list[str]:
    """Every key an admission may read or write."""
    return [
        request.rate_key,
        request.cap_key,
        request.free_key,
        request.endpoint_key,
        request.total_key,
        request.balance_key,
        request.debited_key,
    ]


async def lock_rows(conn: AsyncConnection, insert: Any, keys: Iterable[str], now: datetime) -> Rows:
    """Lock (creating placeholders for) ``keys`` and read them."""
    ordered = sorted(set(keys))
    # A no-op update: it locks the existing row (DO NOTHING would not) and returns it.
    statement = (
        insert(counters)
        .on_conflict_do_update(index_elements=[_T.key], set_={"count": _T.count})
        .returning(_T.key, _T.count, _T.expires_at)
    )
    placeholders = [
        {"key": key, "count": 0, "text": None, "expires_at": PLACEHOLDER_EXPIRY} for key in ordered
    ]
    rows = {
        str(key): Row(int(count), None if expires_at is None else stored_utc(expires_at))
        for key, count, expires_at in await conn.execute(statement, placeholders)
    }
    return Rows(rows, now)


async def write_rows(conn: AsyncConnection, insert: Any, rows: Rows) -> None:
    """Write back every row the batch changed."""
    values = rows.written()
    if not values:
        return
    await conn.execute(_overwrite(insert), values)


_STORED_EXPIRY = stored_by_sqlalchemy(counters.c.expires_at)
# The table's name comes from the schema and every value is bound (hence the noqa).
_OVERWRITE_SQL = (
    f"INSERT INTO {counters.name} "  # noqa: S608
    "(key, count, text, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET count = excluded.count, text = excluded.text, "
    "expires_at = excluded.expires_at"
)
_DELETE_SQL = f"DELETE FROM {counters.name} WHERE key IN ({{marks}})"  # noqa: S608


def write_rows_on_driver(
    db: sqlite3.Connection, present: Mapping[str, Row], absent: Iterable[str]
) -> None:
    """The upsert of :func:`write_rows` for the ``present`` rows, and the deletion of the
    ``absent`` keys' rows, on SQLite's own connection inside its transaction: without
    SQLAlchemy's execution layer (the owned store's group commit, where that layer cost
    most of a commit)."""
    for part in in_driver_batches(sorted(absent)):
        db.execute(_DELETE_SQL.format(marks=parameter_marks(len(part))), part)
    if present:
        db.executemany(
            _OVERWRITE_SQL,
            [
                (key, row.count, None, _STORED_EXPIRY(row.expires_at))
                for key, row in sorted(present.items())
            ],
        )


@functools.cache
def _overwrite(insert: Any) -> Any:
    """The upsert replacing rows whole, built once per dialect's ``insert`` (a statement
    built anew each time costs its cache key: a good part of a small transaction)."""
    statement = insert(counters)
    return statement.on_conflict_do_update(
        index_elements=[_T.key],
        set_={
            "count": statement.excluded.count,
            "text": statement.excluded.text,
            "expires_at": statement.excluded.expires_at,
        },
    )


def decide(request: AdmissionRequest, rows: Rows) -> AdmissionDecision:
    """Take one admission decision and reserve what it uses in ``rows``."""
    now = rows.now
    limit = request.rate_limit
    if limit == 0:
        return AdmissionDecision(
            Verdict.RATE_LIMITED, rate_reset_after=request.rate_window.total_seconds()
        )
    used, ends = rows.window(request.rate_key)
    if ends is None:
        ends = now + request.rate_window
    verdict, counted, charge, debited = (
        (Verdict.RATE_LIMITED, False, "", 0) if used >= limit else _verdict(request, rows)
    )
    if counted:
        rows.put(request.rate_key, used + 1, ends)
    return AdmissionDecision(
        verdict,
        charge,
        debited,
        limit,
        max(0, limit - used - counted),
        max(0.0, (ends - now).total_seconds()),
    )


def _verdict(request: AdmissionRequest, rows: Rows) -> tuple[Verdict, bool, str, int]:
    """The verdict of a call within its rate limit, whether it counts as a rate hit, its
    charge and debit; what it reserves is reserved in ``rows``. A tuple, not a decision:
    :func:`decide` makes the one decision a call gets (on the hot path, once a call)."""
    capped = _cap_verdict(request, rows)
    if capped is not None:
        return capped, capped is Verdict.CAP_EXCEEDED, "", 0
    price = request.price
    if price == 0:
        if rows.value(request.free_key) < request.free_quota:
            rows.add(request.free_key, 1, request.monthly_ttl)
            _count_call(request, rows)
            return Verdict.ADMITTED, True, FREE, 0
        price = 1
    if rows.value(request.endpoint_key) < request.endpoint_quota:
        _count_call(request, rows)
        return Verdict.ADMITTED, True, "0", 0
    balance = rows.live(request.balance_key)
    if balance is None:
        # The rate hit is given back: it is simply not written.
        return Verdict.BALANCE_UNKNOWN, False, "", 0
    if balance < price:
        return Verdict.INSUFFICIENT_CREDIT, True, "", 0
    rows.add(request.balance_key, -price, None)
    rows.add(request.debited_key, price, None)
    _count_call(request, rows)
    return Verdict.ADMITTED, True, str(price), price


def _cap_verdict(request: AdmissionRequest, rows: Rows) -> Verdict | None:
    """``CAP_EXCEEDED`` or ``CAP_UNKNOWN`` when the usage cap stops the call; else None."""
    if request.cap == 0:
        return Verdict.CAP_EXCEEDED
    if request.cap < 0:
        return None
    units = rows.live(request.cap_key)
    if units is None and request.cap_reported:
        return Verdict.CAP_UNKNOWN
    return Verdict.CAP_EXCEEDED if (units or 0) >= request.cap else None


def undo(request: AdmissionRequest, decision: AdmissionDecision, rows: Rows) -> None:
    """Give back what an admitted call reserved (not its rate hit).

    Counters that expired meanwhile stay missing. The debit comes back to the hot balance
    if it is loaded, and always off the cumulative debits: a hot balance loaded later is
    computed from them, so the refund reaches it either way.
    """
    if not decision.admitted:
        return
    rows.add_existing(request.total_key, -1)
    rows.add_existing(request.endpoint_key, -1)
    if decision.charge == FREE:
        rows.add_existing(request.free_key, -1)
    if decision.debited:
        rows.add_existing(request.balance_key, decision.debited)
        rows.add(request.debited_key, -decision.debited, None)


def _count_call(request: AdmissionRequest, rows: Rows) -> None:
    rows.add(request.total_key, 1, request.monthly_ttl)
    rows.add(request.endpoint_key, 1, request.monthly_ttl)


def stored_utc(value: datetime) -> datetime:
    """A time read back from the counters table as UTC-aware (SQLite's come back naive;
    every stored time is UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
