"""Applying and creating migrations (``m3o migrate``; ``m3o serve`` applies them itself).

On PostgreSQL an upgrade first takes a transaction-level advisory lock, so upgrades started
at once (a deploy job retried, every CLI command that opens the database) take turns: the
first applies the history, the others then find it applied. SQLite needs none: its
transaction (``BEGIN IMMEDIATE``) already holds the file.

A database already at the newest revision is told apart by one query, without alembic:
loading alembic, its environment (every service's tables) and the history took about 0.7 s
of every CLI command that opens the database (`m3o config get`: 2.2 to 2.8 s, now 1.5 to
1.7). The history is linear and each revision is named by its file's four-digit number
(``0012_event_handover_cursor.py`` is ``0012``), so the newest is the highest-numbered
file (:func:`head_revision`; ``tests/test_migrations.py`` holds alembic to the same answer,
and :func:`create_revision` numbers new files so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = ["create_revision", "head_revision", "upgrade"]

_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
_UPGRADE_LOCK = 0x6D336F5F6D696772
"""The advisory lock key of upgrades (``m3o_migr`` in ASCII)."""


_VERSION_FILES = "[0-9][0-9][0-9][0-9]_*.py"


def head_revision() -> str:
    """The newest revision of the history: the number of its highest-numbered file."""
    numbers = sorted(p.name[:4] for p in (_MIGRATIONS / "versions").glob(_VERSION_FILES))
    return numbers[-1]


async def _revision_of(connection: AsyncConnection) -> str | None:
    """The revision the database is at (None: never migrated)."""

    def has_versions(sync: Connection) -> bool:
        return bool(sync.dialect.has_table(sync, "alembic_version"))

    if not await connection.run_sync(has_versions):
        return None
    found = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    return str(found[0][0]) if len(found) == 1 else None


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("version_locations", str(_MIGRATIONS / "versions"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision``."""

    def _upgrade(connection: Connection) -> None:
        from alembic import command

        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as connection:
        if revision == "head" and await _revision_of(connection) == head_revision():
            return
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK}
            )
        await connection.run_sync(_upgrade)


async def create_revision(engine: AsyncEngine, message: str) -> None:
    """Autogenerate a migration from the difference between the tables and ``engine``."""

    def _revision(connection: Connection) -> None:
        from alembic import command

        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        following = f"{int(head_revision()) + 1:04d}"
        command.revision(cfg, message=message, autogenerate=True, rev_id=following)

    async with engine.begin() as connection:
        await connection.run_sync(_revision)
