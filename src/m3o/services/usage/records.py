"""The stored ranking and the custom analytics events: reading and writing their tables.

Every function works inside the caller's session, so the caller decides the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.tables import events, ranks

__all__ = [
    "AnalyticsEvent",
    "insert_event",
    "latest_events",
    "load_ranking",
    "save_ranking",
]

_CURRENT = "current"


async def load_ranking(session: AsyncSession) -> pb.ListAPIRanksResponse:
    """The stored ranking; empty when none was computed yet."""
    stored = await session.scalar(select(ranks.c.ranking).where(ranks.c.id == _CURRENT))
    if stored is None:
        return pb.ListAPIRanksResponse()
    return pb.ListAPIRanksResponse.FromString(bytes(stored))


async def save_ranking(
    session: AsyncSession, ranking: pb.ListAPIRanksResponse, computed: datetime
) -> None:
    """Replace the stored ranking."""
    dialect = session.get_bind().dialect.name
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ranks).values(
        id=_CURRENT, ranking=ranking.SerializeToString(), computed=computed
    )
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[ranks.c.id],
            set_={"ranking": upsert.excluded.ranking, "computed": upsert.excluded.computed},
        )
    )


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """A custom analytics event as stored."""

    id: str
    table: str
    record: dict[str, Any]
    created: datetime


async def insert_event(session: AsyncSession, event: AnalyticsEvent) -> None:
    """Store ``event``; raises ``sqlalchemy.exc.IntegrityError`` when its table holds an
    event with its id."""
    await session.execute(
        insert(events).values(
            table_name=event.table, id=event.id, record=event.record, created=event.created
        )
    )


async def latest_events(session: AsyncSession, table: str, limit: int) -> list[AnalyticsEvent]:
    """The ``limit`` newest events of ``table``, newest first."""
    query = (
        select(events.c.id, events.c.table_name, events.c.record, events.c.created)
        .where(events.c.table_name == table)
        .order_by(events.c.created.desc(), events.c.seq.desc())
        .limit(limit)
    )
    return [
        AnalyticsEvent(row.id, row.table_name, dict(row.record), row.created)
        for row in await session.execute(query)
    ]
