"""Alembic environment: one migration history for every table of the platform."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

from m3o.platform.services import METADATA
from m3o.runtime.store import create_engine

config = context.config
target_metadata = list(METADATA)


def _render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Write our column types as the plain SQLAlchemy types they store as."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine: AsyncEngine | None = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        if owned:
            await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `m3o migrate`")

connection: Connection | None = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
