"""Key rows: reading and writing ``v1_keys`` (the service's database access).

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its events in the same one). On SQLite (``m3o serve``), ``last_seen`` is
also written on the driver's own connection (:func:`touch_last_seen_on_driver`): every
served call moves it, and a batch's write through SQLAlchemy's session cost more than
SQLite's work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.store.inline_sqlite import stored_by_sqlalchemy
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.tables import keys, removed_keys
from m3o.services.v1.view import KeyRecord, KeyStatus

__all__ = [
    "KeyRow",
    "find",
    "find_by_hash",
    "found_ids",
    "insert_new",
    "of_billing_account",
    "of_project",
    "of_projects",
    "remove",
    "removed_ids",
    "save_hash",
    "save_status",
    "touch_last_seen",
    "touch_last_seen_on_driver",
]


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One key as stored; times are timezone-aware UTC."""

    id: str
    hash: str
    scopes: tuple[str, ...]
    owner: str
    billing_account: str
    created_by: str
    description: str
    created: datetime
    status: KeyStatus = KeyStatus.ACTIVE
    status_message: str = ""
    last_seen: datetime | None = None
    expires: datetime | None = None
    legacy: bool = False
    """Imported from M3O and not rolled since: ``hash`` is the plain SHA-256 of its key."""

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    @property
    def record(self) -> KeyRecord:
        """What the gateway needs of it."""
        return KeyRecord(
            id=self.id,
            hash=self.hash,
            scopes=self.scopes,
            owner=self.owner,
            billing_account=self.billing_account,
            status=self.status,
            status_message=self.status_message,
            expires=_unix(self.expires),
            legacy=self.legacy,
        )

    def with_status(self, status: KeyStatus, message: str) -> KeyRow:
        return replace(self, status=status, status_message=message)

    def to_proto(self) -> pb.APIKey:
        return pb.APIKey(
            id=self.id,
            description=self.description,
            created_time=int(self.created.timestamp()),
            scopes=list(self.scopes),
            last_seen=_unix(self.last_seen),
            status=self.status.value,
            status_message=self.status_message,
            project_id=self.owner,
            expires=_unix(self.expires),
            legacy=self.legacy,
        )


def _unix(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


def _row(row: Row[Any]) -> KeyRow:
    scopes = row.scopes if isinstance(row.scopes, list) else []
    return KeyRow(
        id=row.id,
        hash=row.hash,
        scopes=tuple(str(scope) for scope in scopes),
        owner=row.owner,
        billing_account=row.billing_account,
        created_by=row.created_by,
        description=row.description,
        created=row.created,
        status=KeyStatus(row.status),
        status_message=row.status_message,
        last_seen=row.last_seen,
        expires=row.expires,
        legacy=bool(row.legacy),
    )


async def _all(session: AsyncSession, query: Select[Any], lock: bool) -> list[KeyRow]:
    if lock:
        query = query.with_for_update()
    return [_row(row) for row in (await session.execute(query)).all()]


async def insert_new(session: AsyncSession, row: KeyRow) -> None:
    await session.execute(
        insert(keys).values(
            id=row.id,
            hash=row.hash,
            scopes=list(row.scopes),
            owner=row.owner,
            billing_account=row.billing_account,
            created_by=row.created_by,
            description=row.description,
            created=row.created,
            status=row.status.value,
            status_message=row.status_message,
            last_seen=row.last_seen,
            expires=row.expires,
            legacy=row.legacy,
        )
    )


async def find(session: AsyncSession, key_id: str, *, lock: bool = False) -> KeyRow | None:
    found = await _all(session, select(keys).where(keys.c.id == key_id), lock)
    return found[0] if found else None


async def find_by_hash(session: AsyncSession, key_hash: str) -> KeyRow | None:
    found = await _all(session, select(keys).where(keys.c.hash == key_hash), False)
    return found[0] if found else None


async def found_ids(
    session: AsyncSession, *, ids: Collection[str] = (), hashes: Collection[str] = ()
) -> dict[str, str]:
    """Of the keys with one of these ids or hashes, each one's hash -> its id."""
    if not ids and not hashes:
        return {}
    query = select(keys.c.id, keys.c.hash).where(
        or_(keys.c.id.in_(sorted(ids)), keys.c.hash.in_(sorted(hashes)))
    )
    return {row.hash: row.id for row in (await session.execute(query)).all()}


async def of_projects(session: AsyncSession, project_ids: Collection[str]) -> list[KeyRow]:
    """The keys of these projects, newest first (ties broken by id)."""
    if not project_ids:
        return []
    query = (
        select(keys)
        .where(keys.c.owner.in_(sorted(project_ids)))
        .order_by(keys.c.created.desc(), keys.c.id)
    )
    return await _all(session, query, False)


async def of_billing_account(
    session: AsyncSession,
    customer_id: str,
    *,
    status: KeyStatus | None = None,
    status_message: str | None = None,
    lock: bool = False,
) -> list[KeyRow]:
    """The keys a customer pays for, optionally only those in ``status`` (with
    ``status_message``), oldest first."""
    query = select(keys).where(keys.c.billing_account == customer_id)
    if status is not None:
        query = query.where(keys.c.status == status.value)
    if status_message is not None:
        query = query.where(keys.c.status_message == status_message)
    return await _all(session, query.order_by(keys.c.created, keys.c.id), lock)


async def of_project(session: AsyncSession, project_id: str, *, lock: bool = False) -> list[KeyRow]:
    query = select(keys).where(keys.c.owner == project_id).order_by(keys.c.created, keys.c.id)
    return await _all(session, query, lock)


async def save_status(session: AsyncSession, row: KeyRow) -> None:
    """Write status and status message only (never ``last_seen``)."""
    await session.execute(
        update(keys)
        .where(keys.c.id == row.id)
        .values(status=row.status.value, status_message=row.status_message)
    )


async def save_hash(session: AsyncSession, key_id: str, key_hash: str, *, legacy: bool) -> bool:
    """Give the key a new hash (a roll); False when the key is gone."""
    result = await session.execute(
        update(keys).where(keys.c.id == key_id).values(hash=key_hash, legacy=legacy)
    )
    return bool(getattr(result, "rowcount", 0))


async def remove(session: AsyncSession, key_ids: Sequence[str], *, when: datetime) -> None:
    """Delete these keys, remembering their ids (see :func:`removed_ids`)."""
    if key_ids:
        await session.execute(delete(keys).where(keys.c.id.in_(list(key_ids))))
        await session.execute(
            insert(removed_keys), [{"id": key_id, "removed": when} for key_id in key_ids]
        )


async def removed_ids(session: AsyncSession, key_ids: Collection[str]) -> set[str]:
    """Which of these ids are of keys deleted here."""
    if not key_ids:
        return set()
    query = select(removed_keys.c.id).where(removed_keys.c.id.in_(sorted(key_ids)))
    return set((await session.scalars(query)).all())


async def touch_last_seen(session: AsyncSession, seen: Mapping[str, datetime]) -> None:
    """Move each key's ``last_seen`` forward to the time given (never backward), writing
    nothing else; unknown keys are ignored."""
    if not seen:
        return
    statement = (
        update(keys)
        .where(
            keys.c.id == bindparam("key_id"),
            or_(keys.c.last_seen.is_(None), keys.c.last_seen < bindparam("seen")),
        )
        .values(last_seen=bindparam("seen"))
    )
    await session.execute(
        statement,
        [{"key_id": key_id, "seen": when} for key_id, when in sorted(seen.items())],
    )


# The table's name comes from the schema and every value is bound (hence the noqa).
_TOUCH_SQL = (
    f"UPDATE {keys.name} SET last_seen = ? "  # noqa: S608
    "WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)"
)
_STORED_LAST_SEEN = stored_by_sqlalchemy(keys.c.last_seen)


def touch_last_seen_on_driver(db: sqlite3.Connection, seen: Mapping[str, datetime]) -> None:
    """:func:`touch_last_seen` on SQLite's own connection, inside its transaction."""
    rows = []
    for key_id, when in sorted(seen.items()):
        stored = _STORED_LAST_SEEN(when)
        rows.append((stored, key_id, stored))
    db.executemany(_TOUCH_SQL, rows)
