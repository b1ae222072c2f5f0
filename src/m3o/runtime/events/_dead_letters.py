"""Dead letters: the events a consumer group gave up on, kept for operators.

Both event backends keep them in the database (``runtime_event_dead_letters``). Replaying
one marks it replayed and, in the same transaction, has the backend queue the event again
for that group only.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.errors import Conflict, NotFound
from m3o.runtime.events import DeadLetter, Delivery
from m3o.runtime.events.tables import dead_letters
from m3o.runtime.store import SessionFactory

__all__ = ["add_dead_letter", "describe_failure", "list_dead_letters", "take_for_replay"]

REPLAY_ID = "events.replaydeadletter"
MAX_ERROR_CHARS = 8_000


def describe_failure(error: BaseException) -> str:
    """The exception's type, message and traceback, cut to a size a row can hold."""
    text = "".join(traceback.format_exception(error)).strip()
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS // 2] + "\n...\n" + text[-MAX_ERROR_CHARS // 2 :]
    return text


async def add_dead_letter(session: AsyncSession, group: str, delivery: Delivery, error: str) -> str:
    """Record ``delivery`` as given up on by ``group`` (in ``session``'s transaction)."""
    letter_id = uuid4().hex
    await session.execute(
        insert(dead_letters).values(
            id=letter_id,
            event_id=delivery.id,
            topic=delivery.topic,
            group_name=group,
            type_name=delivery.type_name,
            time=delivery.time,
            payload=delivery.payload,
            attempts=delivery.attempt,
            error=error,
            failed_at=datetime.now(UTC),
        )
    )
    return letter_id


async def list_dead_letters(
    sessions: SessionFactory,
    *,
    topic: str | None = None,
    group: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
) -> list[DeadLetter]:
    query = select(dead_letters).order_by(dead_letters.c.failed_at.desc(), dead_letters.c.id.desc())
    if topic is not None:
        query = query.where(dead_letters.c.topic == topic)
    if group is not None:
        query = query.where(dead_letters.c.group_name == group)
    if not include_replayed:
        query = query.where(dead_letters.c.replayed_at.is_(None))
    async with sessions() as session:
        rows = (await session.execute(query.limit(max(limit, 0)))).mappings().all()
    return [_letter(row) for row in rows]


async def take_for_replay(session: AsyncSession, dead_letter_id: str) -> DeadLetter:
    """Lock the dead letter and mark it replayed; NotFound or Conflict when it cannot be."""
    row = (
        (
            await session.execute(
                select(dead_letters).where(dead_letters.c.id == dead_letter_id).with_for_update()
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(REPLAY_ID, "Dead letter not found")
    if row["replayed_at"] is not None:
        raise Conflict(REPLAY_ID, "Dead letter was already replayed")
    now = datetime.now(UTC)
    await session.execute(
        update(dead_letters).where(dead_letters.c.id == dead_letter_id).values(replayed_at=now)
    )
    return _letter({**row, "replayed_at": now})


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        event_id=row["event_id"],
        topic=row["topic"],
        group=row["group_name"],
        type_name=row["type_name"],
        time=row["time"],
        payload=bytes(row["payload"]),
        attempts=row["attempts"],
        error=row["error"],
        failed_at=row["failed_at"],
        replayed_at=row["replayed_at"],
    )
