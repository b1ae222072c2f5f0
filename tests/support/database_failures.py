"""Real database failures, as SQLAlchemy raises them, for the code that must tell a
database that cannot take the work now (Unavailable) from work that is wrong (a bug)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from m3o.runtime.store import sqlite_url


def postgres_out_of_slots() -> AsyncEngine:
    """An engine whose every connection PostgreSQL refuses as it does once all of its
    ``max_connections`` are taken: the driver's own error, through SQLAlchemy."""

    async def full() -> Any:
        raise asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")

    return create_async_engine("postgresql+asyncpg://", async_creator=full)


async def raised(engine: AsyncEngine, statement: str) -> DBAPIError:
    """What running ``statement`` on ``engine`` raises (it must fail)."""
    try:
        with pytest.raises(DBAPIError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    return caught.value


async def sqlite_locked(tmp_path: Path) -> DBAPIError:
    """A write to a SQLite database another connection holds locked, with no time to
    wait: "database is locked"."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        engine = create_async_engine(sqlite_url(str(path)), connect_args={"timeout": 0})
        return await raised(engine, "CREATE TABLE t (x INTEGER)")
    finally:
        holder.close()
