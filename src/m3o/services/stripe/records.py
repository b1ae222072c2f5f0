"""Reads and writes the stripe service's tables (see :mod:`tables`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.stripe.tables import customers, processed_events

__all__ = [
    "customer_of",
    "delete_mapping",
    "is_processed",
    "map_customer",
    "mark_processed",
    "stripe_customer_of",
]


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def stripe_customer_of(session: AsyncSession, customer_id: str) -> str | None:
    """The Stripe customer of ``customer_id``, if it has one."""
    found = await session.scalar(
        select(customers.c.stripe_customer_id).where(customers.c.customer_id == customer_id)
    )
    return None if found is None else str(found)


async def customer_of(session: AsyncSession, stripe_customer_id: str) -> str | None:
    """The customer whose Stripe customer is ``stripe_customer_id``, if any."""
    found = await session.scalar(
        select(customers.c.customer_id).where(customers.c.stripe_customer_id == stripe_customer_id)
    )
    return None if found is None else str(found)


async def map_customer(
    session: AsyncSession, customer_id: str, stripe_customer_id: str, created: datetime
) -> None:
    """Record the mapping unless either side is mapped already (then nothing changes: the
    first mapping stands). On PostgreSQL a concurrent insert waits for the other."""
    await session.execute(
        _insert(session, customers)
        .values(customer_id=customer_id, stripe_customer_id=stripe_customer_id, created=created)
        .on_conflict_do_nothing()
    )


async def delete_mapping(session: AsyncSession, customer_id: str) -> None:
    await session.execute(delete(customers).where(customers.c.customer_id == customer_id))


async def is_processed(session: AsyncSession, event_id: str) -> bool:
    found = await session.scalar(
        select(processed_events.c.event_id).where(processed_events.c.event_id == event_id)
    )
    return found is not None


async def mark_processed(
    session: AsyncSession, event_id: str, event_type: str, processed: datetime
) -> bool:
    """Record the Stripe event as handled; False when it had been already (by another
    delivery, possibly one running at the same time: PostgreSQL makes this insert wait for
    that one's transaction, then finds its row)."""
    result = await session.execute(
        _insert(session, processed_events)
        .values(event_id=event_id, type=event_type, processed=processed)
        .on_conflict_do_nothing()
    )
    return bool(getattr(result, "rowcount", 0) == 1)
