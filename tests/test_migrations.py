"""The migration history builds exactly the tables the code declares, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from m3o.platform.services import METADATA
from m3o.runtime.store import create_engine, sqlite_url
from m3o.runtime.store.migrate import upgrade
from support.backends import DATABASE_BACKENDS, POSTGRES_URL


def _differences(connection: Connection) -> list[Any]:
    declared = MetaData()
    for metadata in METADATA:
        for table in metadata.tables.values():
            table.to_metadata(declared)
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, declared))


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_upgrade_head_matches_declared_tables(backend: str, tmp_path: Path) -> None:
    schema = None
    if backend == "sqlite":
        engine = create_engine(sqlite_url(str(tmp_path / "m.db")))
    else:
        schema = f"m_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_URL, pool_size=1)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await admin.dispose()
        engine = create_engine(POSTGRES_URL, schema=schema)
    try:
        await upgrade(engine)
        await upgrade(engine)  # applying twice is harmless
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
        assert differences == []
    finally:
        await engine.dispose()
        if schema is not None:
            admin = create_engine(POSTGRES_URL, pool_size=1)
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


async def test_upgrades_started_at_once_on_postgresql_apply_the_history_once() -> None:
    """Several `m3o migrate` at once (a deploy job retried, two operators): they take
    turns, the first applies the history, the others find it applied."""
    if "postgres" not in DATABASE_BACKENDS:
        pytest.fail("PostgreSQL is needed for this test")
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engines = [create_engine(POSTGRES_URL, schema=schema, pool_size=1) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        async with engines[0].connect() as conn:
            differences = await conn.run_sync(_differences)
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert differences == []
        assert len(versions) == 1
    finally:
        for engine in engines:
            await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
