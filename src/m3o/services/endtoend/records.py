"""Reads and writes the endtoend service's tables (see :mod:`tables`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.endtoend.tables import codes, results

__all__ = [
    "CODE_RETENTION",
    "RESULT_RETENTION",
    "StoredResult",
    "add_code",
    "add_result",
    "code_since",
    "latest_result",
]

CODE_RETENTION = timedelta(days=1)
"""Codes older than this are removed when a new one arrives (they expire in minutes)."""
RESULT_RETENTION = timedelta(days=30)
"""Results older than this are removed when a run stores its own."""


@dataclass(frozen=True, slots=True)
class StoredResult:
    run_id: str
    started: datetime
    finished: datetime
    passed: bool
    error: str


async def add_code(session: AsyncSession, code: str, received: datetime) -> None:
    """Store a code that arrived at ``received``; forget those past :data:`CODE_RETENTION`."""
    await session.execute(delete(codes).where(codes.c.received < received - CODE_RETENTION))
    await session.execute(insert(codes).values(id=str(uuid.uuid4()), code=code, received=received))


async def code_since(session: AsyncSession, since: datetime) -> str | None:
    """The newest code that arrived at or after ``since``."""
    found = await session.scalar(
        select(codes.c.code)
        .where(codes.c.received >= since)
        .order_by(codes.c.received.desc())
        .limit(1)
    )
    return None if found is None else str(found)


async def add_result(session: AsyncSession, result: StoredResult) -> None:
    """Store a run's result; forget results past :data:`RESULT_RETENTION`."""
    await session.execute(
        delete(results).where(results.c.finished < result.finished - RESULT_RETENTION)
    )
    await session.execute(
        insert(results).values(
            run_id=result.run_id,
            started=result.started,
            finished=result.finished,
            passed=result.passed,
            error=result.error,
        )
    )


async def latest_result(session: AsyncSession) -> StoredResult | None:
    """The result of the run that finished last."""
    row = (
        await session.execute(select(results).order_by(results.c.finished.desc()).limit(1))
    ).first()
    if row is None:
        return None
    return StoredResult(
        run_id=row.run_id,
        started=row.started,
        finished=row.finished,
        passed=row.passed,
        error=row.error,
    )
