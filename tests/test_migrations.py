"""The migration history builds exactly the tables the code declares, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.platform.services import METADATA
from m3o.runtime.store import create_engine, sqlite_url
from m3o.runtime.store.migrate import _alembic_config, head_revision, upgrade
from support.backends import DATABASE_BACKENDS, POSTGRES_URL


def _differences(connection: Connection) -> list[Any]:
    declared = MetaData()
    for metadata in METADATA:
        for table in metadata.tables.values():
            table.to_metadata(declared)
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, declared))


@contextlib.asynccontextmanager
async def _fresh(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of ``backend`` (a PostgreSQL schema of its own)."""
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
        yield engine
    finally:
        await engine.dispose()
        if schema is not None:
            admin = create_engine(POSTGRES_URL, pool_size=1)
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_upgrade_head_matches_declared_tables(backend: str, tmp_path: Path) -> None:
    async with _fresh(backend, tmp_path) as engine:
        await upgrade(engine)
        await upgrade(engine)  # applying twice is harmless
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
        assert differences == []


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


def test_the_head_read_from_the_file_names_is_alembics_and_the_history_is_numbered() -> None:
    script = ScriptDirectory.from_config(_alembic_config())  # as `m3o migrate` reads it
    assert script.get_heads() == [head_revision()]  # one line of history, ending there
    files = {p.stem[:4]: p.name for p in Path(script.versions).glob("[0-9]*.py")}
    revisions = list(script.walk_revisions())
    assert {r.revision for r in revisions} == set(files)  # each named by its file's number
    for revision in revisions:
        assert revision.path is not None
        assert Path(revision.path).name == files[revision.revision]


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_a_database_behind_is_brought_to_the_head(backend: str, tmp_path: Path) -> None:
    async with _fresh(backend, tmp_path) as engine:
        behind = f"{int(head_revision()) - 1:04d}"
        await upgrade(engine, behind)
        async with engine.connect() as conn:
            assert await _version(conn) == behind
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await _version(conn) == head_revision()
            assert await conn.run_sync(_differences) == []


def test_a_database_at_the_head_is_opened_without_loading_alembic(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    script = f"""
import asyncio, sys
from m3o.runtime.store import create_engine, sqlite_url
from m3o.runtime.store.migrate import upgrade

async def main():
    engine = create_engine(sqlite_url({str(path)!r}))
    await upgrade(engine)
    await engine.dispose()

asyncio.run(main())
print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic"))
"""

    def loaded() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert loaded() != "[]"  # the first start migrates, with alembic
    assert loaded() == "[]"  # the next finds the head with one query


async def _version(conn: Any) -> str:
    return str((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one())
