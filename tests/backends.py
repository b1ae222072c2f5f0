"""Database backends for tests: fresh SQLite files and PostgreSQL schemas.

Importable from any test as ``backends`` (``pythonpath`` includes ``tests``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.registry import all_metadata
from m3o.runtime.store import create_engine, sqlite_url

POSTGRES_URL = os.environ.get(
    "M3O_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("M3O_TEST_REDIS", "redis://127.0.0.1:6379/15")
DATABASE_BACKENDS = [
    b.strip()
    for b in os.environ.get("M3O_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip() in ("sqlite", "postgres")
]


async def create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for metadata in all_metadata():
            await conn.run_sync(metadata.create_all)


async def make_engine(backend: str, tmp_path: Path) -> tuple[AsyncEngine, str | None]:
    """A fresh, empty database with every table: a SQLite file or a PostgreSQL schema."""
    if backend == "sqlite":
        engine = create_engine(sqlite_url(str(tmp_path / "m3o.db")))
        await create_all(engine)
        return engine, None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = create_engine(POSTGRES_URL, schema=schema)
    await create_all(engine)
    return engine, schema


async def drop_engine(engine: AsyncEngine, schema: str | None) -> None:
    await engine.dispose()
    if schema is not None:
        admin = create_engine(POSTGRES_URL, pool_size=1)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
