"""The migration history builds exactly the tables the code declares, on both databases."""

from __future__ import annotations

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
