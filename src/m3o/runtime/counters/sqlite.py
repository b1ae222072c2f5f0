"""The counter store on the database: the ``local`` profile's stand-in for Redis.

Every operation is one statement in one transaction (a refused ``hit`` adds a read; an
admission takes two, see :mod:`m3o.runtime.counters.admission_sqlite`), so it is atomic on its own:
on SQLite the transaction begins ``IMMEDIATE`` and the store queues its own transactions
in the process; on PostgreSQL the ``INSERT .. ON CONFLICT`` upserts lock the rows. Expiry
is an absolute UTC time on the row: an expired row reads as missing, the next write
replaces it, and :meth:`SqlCounterStore.purge_expired` deletes what nobody
rewrote (run it from a cron).

A key holds a counter or a string value, not both: ``get`` of a value reads 0 and
``get_value`` of a counter reads None (Redis, which keeps both as strings, would differ).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    bindparam,
    case,
    delete,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import RateDecision
from m3o.runtime.counters.admission import (
    AdmissionDecision,
    AdmissionRequest,
    Held,
    Hold,
    held_from_record,
    hold_record,
    release_keys,
)
from m3o.runtime.counters.admission_sqlite import (
    admission_keys,
    decide,
    lock_rows,
    stored_utc,
    undo,
    write_rows,
)
from m3o.runtime.counters.tables import counters
from m3o.runtime.errors import Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.store import is_sqlite
from m3o.runtime.store.unreachable import database_unreachable

__all__ = ["SqlCounterStore"]

log = get_logger(__name__)

_T = counters.c


class SqlCounterStore:
    """:class:`~m3o.runtime.counters.CounterStore` on a SQLite (or PostgreSQL) engine.

    ``engine`` belongs to the caller (it is the process's database); :meth:`close` leaves
    it open. ``now`` is the store's clock, UTC-aware; tests pass their own to move time.
    """

    def __init__(self, engine: AsyncEngine, *, now: Clock = utc_now) -> None:
        self._engine = engine
        self._now = now
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._incrementing = _incrementing(self._insert)
        # SQLite admits one writer at a time and makes the others sleep and poll (busy
        # timeout); queueing this store's transactions in the process is much faster.
        self._turn: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if is_sqlite(engine) else contextlib.nullcontext()
        )

    def _clock(self) -> datetime:
        now = self._now()
        if now.tzinfo is UTC:
            return now
        if now.tzinfo is None:
            raise ValueError("the counter store's clock must be timezone-aware")
        return now.astimezone(UTC)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; a database that cannot be reached becomes Unavailable."""
        try:
            async with self._turn, self._engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError, OSError) as exc:
            raise _unavailable(exc) from exc
        except DBAPIError as exc:  # PostgreSQL out of connection slots, shutting down...
            if not database_unreachable(exc):
                raise
            raise _unavailable(exc) from exc

    async def incr(self, key: str, amount: int = 1, *, ttl: timedelta | None = None) -> int:
        return (await self.incr_many({key: amount}, ttl=ttl))[key]

    async def incr_many(
        self, amounts: Mapping[str, int], *, ttl: timedelta | None = None
    ) -> dict[str, int]:
        """One multi-row upsert: a live row adds the new row's count and keeps its expiry,
        a missing or expired one is replaced by the new row. The rows are parameter sets,
        not ``values([..])``, and the statement is built once, so its compiled form is
        found by the cache key kept on it."""
        if not amounts:
            return {}
        now = self._clock()
        expires_at = _expiry(now, ttl)
        rows = [
            {"key": key, "count": amount, "text": None, "expires_at": expires_at, "now": now}
            for key, amount in sorted(amounts.items())  # one lock order on PostgreSQL
        ]
        async with self._transaction() as conn:
            adding = await conn.execute(self._incrementing, rows)
            return {str(key): int(count) for key, count in adding}

    async def get(self, key: str) -> int:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        statement = select(_T.key, _T.count).where(_T.key.in_(set(keys)), _live(self._clock()))
        async with self._transaction() as conn:
            found = {key: int(count) for key, count in await conn.execute(statement)}
        return [found.get(key, 0) for key in keys]

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        async with self._transaction() as conn:
            await conn.execute(delete(counters).where(_T.key.in_(set(keys))))

    async def set_value(self, key: str, value: str, *, ttl: timedelta | None = None) -> None:
        await self._put(key, 0, value, ttl, only_if_absent=False)

    async def get_value(self, key: str) -> str | None:
        statement = select(_T.text).where(_T.key == key, _live(self._clock()))
        async with self._transaction() as conn:
            value = (await conn.execute(statement)).scalar_one_or_none()
        return None if value is None else str(value)

    async def set_if_absent(self, key: str, value: str, *, ttl: timedelta) -> bool:
        return await self._put(key, 0, value, ttl, only_if_absent=True)

    async def incr_existing(self, key: str, amount: int) -> int | None:
        statement = (
            update(counters)
            .where(_T.key == key, _live(self._clock()))
            .values(count=_T.count + amount)
            .returning(_T.count)
        )
        async with self._transaction() as conn:
            value = (await conn.execute(statement)).scalar_one_or_none()
        return None if value is None else int(value)

    async def set_counter_if_absent(
        self, key: str, value: int, *, ttl: timedelta | None = None
    ) -> bool:
        return await self._put(key, value, None, ttl, only_if_absent=True)

    async def set_counter(self, key: str, value: int, *, ttl: timedelta | None = None) -> None:
        await self._put(key, value, None, ttl, only_if_absent=False)

    async def _put(
        self,
        key: str,
        count: int,
        text: str | None,
        ttl: timedelta | None,
        *,
        only_if_absent: bool,
    ) -> bool:
        """Write a row (replacing value and expiry); with ``only_if_absent``, only where no
        live row is (a live one makes the statement a no-op that returns no row). Whether
        it was written."""
        now = self._clock()
        insert = self._insert(counters).values(
            key=key, count=count, text=text, expires_at=_expiry(now, ttl)
        )
        statement = insert.on_conflict_do_update(
            index_elements=[_T.key],
            set_={
                "count": insert.excluded.count,
                "text": insert.excluded.text,
                "expires_at": insert.excluded.expires_at,
            },
            where=~_live(now) if only_if_absent else None,
        ).returning(_T.key)
        async with self._transaction() as conn:
            return (await conn.execute(statement)).first() is not None

    async def hit(self, key: str, *, limit: int, window: timedelta) -> RateDecision:
        _check_rate(limit, window)
        now = self._clock()
        if limit == 0:
            return RateDecision(False, 0, 0, window.total_seconds())
        # A window starts with the first hit; a key without expiry (not written by hit)
        # starts one too, so it can never refuse forever.
        fresh = or_(_T.expires_at.is_(None), _T.expires_at <= now)
        insert = self._insert(counters).values(key=key, count=1, text=None, expires_at=now + window)
        statement = insert.on_conflict_do_update(
            index_elements=[_T.key],
            set_={
                "count": _case(fresh, insert.excluded.count, _T.count + 1),
                "text": insert.excluded.text,
                "expires_at": _case(fresh, insert.excluded.expires_at, _T.expires_at),
            },
            # A full window is left untouched: a refused hit changes nothing.
            where=or_(fresh, _T.count < limit),
        ).returning(_T.count, _T.expires_at)
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).first()
            if row is not None:
                return _decision(True, limit, int(row[0]), stored_utc(row[1]), now)
            # Refused: report the full window as it stands (on PostgreSQL a concurrent
            # delete may have removed it since; then it ends now).
            lookup = select(_T.count, _T.expires_at).where(_T.key == key)
            row = (await conn.execute(lookup)).first()
        if row is None or row[1] is None:
            return _decision(False, limit, limit, now, now)
        return _decision(False, limit, int(row[0]), stored_utc(row[1]), now)

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        return (await self.admit_many([request]))[0]

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        if not requests:
            return []
        keys = [key for request in requests for key in admission_keys(request)]
        async with self._transaction() as conn:
            rows = await lock_rows(conn, self._insert, keys, self._clock())
            decisions = [decide(request, rows) for request in requests]
            await write_rows(conn, self._insert, rows)
            held = [
                {
                    "key": _hold_key(request.hold),
                    "count": 0,
                    "text": hold_record(request, decision),
                    "expires_at": None,
                }
                for request, decision in zip(requests, decisions, strict=True)
                if request.hold is not None and decision.admitted
            ]
            if held:
                await conn.execute(self._insert(counters).on_conflict_do_nothing(), held)
        return decisions

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        if not decision.admitted:
            return
        async with self._transaction() as conn:
            if request.hold is not None:
                removed = await conn.execute(
                    delete(counters).where(_T.key == _hold_key(request.hold)).returning(_T.text)
                )
                record = removed.scalar_one_or_none()
                if record is None:
                    return  # released before, or never reserved
                # What was reserved is what the hold says (the caller may not know it).
                decision = held_from_record(request.hold, str(record)).decision
            rows = await lock_rows(conn, self._insert, release_keys(request), self._clock())
            undo(request, decision, rows)
            await write_rows(conn, self._insert, rows)

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        if not commits:
            return []
        keys = [_hold_key(hold) for hold, _ in commits]
        found: list[bool] = []
        async with self._transaction() as conn:
            lookup = select(_T.key, _T.text).where(_T.key.in_(set(keys)))
            if not is_sqlite(self._engine):
                lookup = lookup.with_for_update()
            records = {str(key): str(text) for key, text in await conn.execute(lookup)}
            served: dict[str, str] = {}
            for key, (_, note) in zip(keys, commits, strict=True):
                record = records.get(key)
                found.append(record is not None)
                if record is None:
                    continue
                data = json.loads(record)
                if "s" not in data:
                    data["s"] = note
                    records[key] = served[key] = json.dumps(data)
            if served:  # one executemany, however many holds
                await conn.execute(
                    update(counters)
                    .where(_T.key == bindparam("hold_key"))
                    .values(text=bindparam("hold_text")),
                    [{"hold_key": key, "hold_text": text} for key, text in served.items()],
                )
        return found

    async def settle_many(self, holds: Sequence[Hold]) -> None:
        if not holds:
            return
        async with self._transaction() as conn:
            await conn.execute(delete(counters).where(_T.key.in_({_hold_key(h) for h in holds})))

    async def holds(self, book: str) -> list[Held]:
        prefix = f"{book}/"
        statement = select(_T.key, _T.text).where(_T.key.startswith(prefix, autoescape=True))
        async with self._transaction() as conn:
            found = [(str(key), str(text)) for key, text in await conn.execute(statement)]
        return [held_from_record(Hold(book, key.removeprefix(prefix)), text) for key, text in found]

    async def purge_expired(self) -> int:
        """Delete every expired row; returns how many went."""
        statement = delete(counters).where(
            _T.expires_at.is_not(None), _T.expires_at <= self._clock()
        )
        async with self._transaction() as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)

    async def ping(self) -> None:
        async with self._transaction() as conn:
            await conn.execute(select(literal(1)))

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""


def _unavailable(exc: Exception) -> Unavailable:
    log.warning("counter store unavailable", error=str(exc).splitlines()[0])
    return Unavailable("counters", "Counter store unavailable")


def _hold_key(hold: Hold) -> str:
    """A hold's row: its book's key, ``/``, its id (a string, never a counter)."""
    return f"{hold.book}/{hold.id}"


def _live(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return or_(_T.expires_at.is_(None), _T.expires_at > now)


def _incrementing(insert_into: Any) -> Any:
    """``incr_many``'s upsert, its time a parameter (``now``) of each row."""
    insert = insert_into(counters)
    live = _live(bindparam("now", type_=_T.expires_at.type))
    return insert.on_conflict_do_update(
        index_elements=[_T.key],
        set_={
            "count": _case(live, _T.count + insert.excluded.count, insert.excluded.count),
            "text": _case(live, _T.text, insert.excluded.text),
            "expires_at": _case(live, _T.expires_at, insert.excluded.expires_at),
        },
    ).returning(_T.key, _T.count)


def _expiry(now: datetime, ttl: timedelta | None) -> datetime | None:
    if ttl is None:
        return None
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    return now + ttl


def _case(condition: ColumnElement[bool], then: Any, otherwise: Any) -> ColumnElement[Any]:
    return case((condition, then), else_=otherwise)


def _decision(
    allowed: bool, limit: int, count: int, expires_at: datetime, now: datetime
) -> RateDecision:
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset_after=max(0.0, (expires_at - now).total_seconds()),
    )


def _check_rate(limit: int, window: timedelta) -> None:
    if limit < 0:
        raise ValueError("limit must not be negative")
    if window <= timedelta(0):
        raise ValueError("window must be positive")
