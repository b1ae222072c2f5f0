"""Reading and writing the admin tables: each deletion and the services done with it.

Every function works inside the caller's session, so the caller decides the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.admin.tables import deletions, steps

__all__ = [
    "Deletion",
    "claim",
    "complete",
    "find",
    "incomplete",
    "mark_deleted",
    "release",
    "start",
]


@dataclass(frozen=True, slots=True)
class Deletion:
    """One customer's deletion: its address and the services done with it."""

    customer_id: str
    email: str
    done: frozenset[str]
    completed: datetime | None


def _insert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that can skip rows whose key exists, in the session's SQL dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def start(session: AsyncSession, customer_id: str, email: str, now: datetime) -> None:
    """Record the deletion of ``customer_id`` unless it is recorded; learn its address."""
    await session.execute(
        _insert(session, deletions)
        .values(customer_id=customer_id, email=email, requested=now, completed=None)
        .on_conflict_do_nothing(index_elements=[deletions.c.customer_id])
    )
    if email:
        await session.execute(
            update(deletions)
            .where(
                deletions.c.customer_id == customer_id,
                deletions.c.email == "",
                deletions.c.completed.is_(None),
            )
            .values(email=email)
        )


async def claim(session: AsyncSession, customer_id: str, now: datetime, until: datetime) -> bool:
    """Hold the unfinished deletion until ``until`` unless another run holds it; True if
    held."""
    result = await session.execute(
        update(deletions)
        .where(
            deletions.c.customer_id == customer_id,
            deletions.c.completed.is_(None),
            or_(deletions.c.claimed_until.is_(None), deletions.c.claimed_until <= now),
        )
        .values(claimed_until=until)
    )
    return int(getattr(result, "rowcount", 0)) == 1


async def release(session: AsyncSession, customer_id: str) -> None:
    await session.execute(
        update(deletions).where(deletions.c.customer_id == customer_id).values(claimed_until=None)
    )


async def find(session: AsyncSession, customer_id: str) -> Deletion | None:
    row = (
        await session.execute(select(deletions).where(deletions.c.customer_id == customer_id))
    ).first()
    if row is None:
        return None
    done = await session.scalars(select(steps.c.service).where(steps.c.customer_id == customer_id))
    return Deletion(
        customer_id=customer_id,
        email=row.email,
        done=frozenset(done),
        completed=row.completed,
    )


async def mark_deleted(
    session: AsyncSession, customer_id: str, service: str, email: str, now: datetime
) -> None:
    """``service`` holds none of the customer's data any more (``email``: the address it
    told, or "")."""
    await session.execute(
        _insert(session, steps)
        .values(customer_id=customer_id, service=service, deleted=now)
        .on_conflict_do_nothing(index_elements=[steps.c.customer_id, steps.c.service])
    )
    if email:
        await session.execute(
            update(deletions)
            .where(
                deletions.c.customer_id == customer_id,
                deletions.c.email == "",
                deletions.c.completed.is_(None),
            )
            .values(email=email)
        )


async def complete(session: AsyncSession, customer_id: str, now: datetime) -> None:
    """Every service has deleted the customer's data: the address is forgotten too (only
    the customer's id and the times stay, as the record that the deletion was done)."""
    await session.execute(
        update(deletions)
        .where(deletions.c.customer_id == customer_id, deletions.c.completed.is_(None))
        .values(completed=now, claimed_until=None, email="")
    )


async def incomplete(session: AsyncSession, limit: int) -> list[str]:
    """Customers whose deletion some service has not finished, oldest first."""
    found = await session.scalars(
        select(deletions.c.customer_id)
        .where(deletions.c.completed.is_(None))
        .order_by(deletions.c.requested, deletions.c.customer_id)
        .limit(limit)
    )
    return list(found)
