"""Customer records: reading and writing the service's two tables.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its event in the same one). A record found by email is always a non-deleted
customer: only those hold a row in the email index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Select, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.customers import events_pb2 as events_pb
from m3o.services.customers.proto import customers_pb2 as pb
from m3o.services.customers.tables import customers, emails

__all__ = [
    "CustomerRecord",
    "Status",
    "deleted_with_email",
    "find",
    "insert_new",
    "page",
    "remove",
    "save",
]


class Status(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    ACTIVE = "active"
    BANNED = "banned"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One customer as stored; times are timezone-aware UTC."""

    id: str
    email: str
    status: Status
    created: datetime
    updated: datetime
    name: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        """The fields both the service's and the event's Customer message carry."""
        return {
            "id": self.id,
            "status": self.status.value,
            "created": int(self.created.timestamp()),
            "email": self.email,
            "updated": int(self.updated.timestamp()),
            "name": self.name,
            "meta": dict(self.meta),
        }

    def to_proto(self) -> pb.Customer:
        return pb.Customer(**self._fields())

    def to_event(self) -> events_pb.Customer:
        return events_pb.Customer(**self._fields())


def _record(row: Row[Any]) -> CustomerRecord:
    meta = row.meta if isinstance(row.meta, dict) else {}
    return CustomerRecord(
        id=row.id,
        email=row.email,
        status=Status(row.status),
        created=row.created,
        updated=row.updated,
        name=row.name,
        meta={str(k): str(v) for k, v in meta.items()},
    )


async def _one(session: AsyncSession, query: Select[Any], lock: bool) -> CustomerRecord | None:
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _record(row)


async def find(
    session: AsyncSession, *, customer_id: str = "", email: str = "", lock: bool = False
) -> CustomerRecord | None:
    """The customer ``customer_id`` (in any status, deleted too), else the non-deleted
    customer holding ``email``; ``lock`` holds the row until the transaction ends."""
    if customer_id:
        query = select(customers).where(customers.c.id == customer_id)
        return await _one(session, query, lock)
    query = (
        select(customers)
        .join(emails, emails.c.customer_id == customers.c.id)
        .where(emails.c.email == email)
    )
    return await _one(session, query, lock)


async def deleted_with_email(session: AsyncSession, email: str) -> list[CustomerRecord]:
    """Every soft-deleted customer that had ``email``."""
    query = select(customers).where(
        customers.c.email == email, customers.c.status == Status.DELETED.value
    )
    return [_record(row) for row in (await session.execute(query)).all()]


async def insert_new(session: AsyncSession, record: CustomerRecord) -> None:
    """Store a new customer and claim its email.

    Raises ``sqlalchemy.exc.IntegrityError`` when another customer holds the email.
    """
    await session.execute(
        insert(customers).values(
            id=record.id,
            email=record.email,
            status=record.status.value,
            name=record.name,
            meta=dict(record.meta),
            created=record.created,
            updated=record.updated,
        )
    )
    await session.execute(insert(emails).values(email=record.email, customer_id=record.id))


async def save(session: AsyncSession, record: CustomerRecord) -> None:
    """Write status, name, meta and updated; a deleted customer releases its email."""
    await session.execute(
        update(customers)
        .where(customers.c.id == record.id)
        .values(
            status=record.status.value,
            name=record.name,
            meta=dict(record.meta),
            updated=record.updated,
        )
    )
    if record.status is Status.DELETED:
        await session.execute(delete(emails).where(emails.c.customer_id == record.id))


async def remove(session: AsyncSession, customer_id: str) -> None:
    """Remove a customer record and its email claim for good."""
    await session.execute(delete(emails).where(emails.c.customer_id == customer_id))
    await session.execute(delete(customers).where(customers.c.id == customer_id))


async def page(session: AsyncSession, *, limit: int, offset: int) -> Sequence[CustomerRecord]:
    """Non-deleted customers, oldest first (ties broken by id)."""
    query = (
        select(customers)
        .where(customers.c.status != Status.DELETED.value)
        .order_by(customers.c.created, customers.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [_record(row) for row in (await session.execute(query)).all()]
