"""Applying and creating migrations (``m3o migrate``; ``m3o serve`` applies them itself).

On PostgreSQL an upgrade first takes a transaction-level advisory lock, so upgrades started
at once (a deploy job retried, every CLI command that opens the database) take turns: the
first applies the history, the others then find it applied. SQLite needs none: its
transaction (``BEGIN IMMEDIATE``) already holds the file.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["create_revision", "upgrade"]

_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
_UPGRADE_LOCK = 0x6D336F5F6D696772
"""The advisory lock key of upgrades (``m3o_migr`` in ASCII)."""


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("version_locations", str(_MIGRATIONS / "versions"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision``."""

    def _upgrade(connection: Connection) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK}
            )
        await connection.run_sync(_upgrade)


async def create_revision(engine: AsyncEngine, message: str) -> None:
    """Autogenerate a migration from the difference between the tables and ``engine``."""

    def _revision(connection: Connection) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)

    async with engine.begin() as connection:
        await connection.run_sync(_revision)
