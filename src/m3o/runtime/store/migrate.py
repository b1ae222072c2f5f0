"""Applying and creating migrations (``m3o migrate``; ``m3o serve`` applies them itself)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["create_revision", "upgrade"]

_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


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
        await connection.run_sync(_upgrade)


async def create_revision(engine: AsyncEngine, message: str) -> None:
    """Autogenerate a migration from the difference between the tables and ``engine``."""

    def _revision(connection: Connection) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)

    async with engine.begin() as connection:
        await connection.run_sync(_revision)
