"""Reads and writes the alerts service's table (see :mod:`tables`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.alerts.proto import alerts_pb2 as pb
from m3o.services.alerts.tables import events

__all__ = ["add", "recent"]


async def add(session: AsyncSession, event: pb.Event, created: datetime) -> None:
    """Store ``event`` (its ``id`` set) as stored at ``created``."""
    await session.execute(
        insert(events).values(
            id=event.id,
            category=event.category,
            action=event.action,
            label=event.label,
            value=event.value,
            meta=dict(event.metadata),
            user_id=event.userID,
            created=created,
        )
    )


async def recent(
    session: AsyncSession, *, since: datetime | None, category: str, limit: int
) -> list[pb.Event]:
    """At most ``limit`` events stored at or after ``since`` (any time when None), of
    ``category`` (any when empty), newest first."""
    query = select(events).order_by(events.c.created.desc(), events.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(events.c.created >= since)
    if category:
        query = query.where(events.c.category == category)
    rows = (await session.execute(query)).mappings().all()
    return [
        pb.Event(
            id=row["id"],
            category=row["category"],
            action=row["action"],
            label=row["label"],
            value=row["value"],
            metadata=row["meta"],
            userID=row["user_id"],
            created=int(row["created"].timestamp()),
        )
        for row in rows
    ]
