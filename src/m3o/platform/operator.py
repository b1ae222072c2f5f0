"""What operators do from the command line against a platform's database directly.

The CLI opens the same database (and, in the ``platform`` profile, Redis) as the running
platform, without starting any service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.config import Config, build_config
from m3o.runtime.config.stored import ConfigStore
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.events import EventBus
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.store import SessionFactory, create_engine, session_factory
from m3o.runtime.store.migrate import upgrade
from m3o.runtime.store.redis import redis_client

__all__ = ["Database", "open_database", "open_engine", "open_event_bus"]


@dataclass(frozen=True, slots=True)
class Database:
    sessions: SessionFactory
    config: Config
    counters: CounterStore
    """The profile's counter store: the database's own (local), Redis (platform)."""


@asynccontextmanager
async def open_engine(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[AsyncEngine]:
    """An engine (one connection) on the configured database, the data directory's SQLite
    file by default, migrated; disposed of on leaving."""
    engine = create_engine(build_config({}, env).database.resolved_url(data_dir), pool_size=1)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


def _is_sqlite(engine: AsyncEngine) -> bool:
    return engine.url.get_backend_name() == "sqlite"


@asynccontextmanager
async def open_database(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[Database]:
    """The configured database, migrated, with the config in force."""
    async with open_engine(data_dir, env) as engine:
        sessions = session_factory(engine)
        config = await ConfigStore(sessions).load(env)
        counters: CounterStore
        if _is_sqlite(engine):
            counters = SqlCounterStore(engine)
        else:
            counters = redis_counter_store(config.redis.connection_url())
        try:
            yield Database(sessions, config, counters)
        finally:
            await counters.close()


@asynccontextmanager
async def open_event_bus(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[EventBus]:
    """The event bus of the configured profile, not started (for dead letters)."""
    async with open_engine(data_dir, env) as engine:
        if _is_sqlite(engine):
            yield sql_event_bus(engine)
            return
        config = await ConfigStore(session_factory(engine)).load(env)
        client = redis_client(config.redis.connection_url(), timeout=10)
        try:
            yield redis_event_bus(engine, client)
        finally:
            await client.aclose()
