"""What operators do from the command line against a platform's database directly.

The CLI opens the same database (and, in the ``platform`` profile, Redis) as the running
platform, without starting any service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from m3o.runtime.config import Config, ConfigStore, build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.events import EventBus
from m3o.runtime.events.redis import redis_event_bus
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.store import SessionFactory, create_engine, session_factory
from m3o.runtime.store.migrate import upgrade
from m3o.runtime.store.redis import redis_client

__all__ = ["Database", "open_database", "open_event_bus"]


@dataclass(frozen=True, slots=True)
class Database:
    sessions: SessionFactory
    config: Config
    counters: CounterStore
    """The profile's counter store: the database's own (local), Redis (platform)."""


@asynccontextmanager
async def open_database(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[Database]:
    """The configured database, migrated, with the config in force."""
    url = build_config({}, env).database.resolved_url(data_dir)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        config = await ConfigStore(sessions).load(env)
        counters: CounterStore
        if make_url(url).get_backend_name() == "sqlite":
            counters = SqlCounterStore(engine)
        else:
            counters = redis_counter_store(config.redis.connection_url())
        try:
            yield Database(sessions, config, counters)
        finally:
            await counters.close()
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_event_bus(data_dir: Path, env: Mapping[str, str]) -> AsyncIterator[EventBus]:
    """The event bus of the configured profile, not started (for dead letters)."""
    url = build_config({}, env).database.resolved_url(data_dir)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine)
        if make_url(url).get_backend_name() == "sqlite":
            yield sql_event_bus(engine)
            return
        config = await ConfigStore(session_factory(engine)).load(env)
        client = redis_client(config.redis.connection_url(), timeout=10)
        try:
            yield redis_event_bus(engine, client)
        finally:
            await client.aclose()
    finally:
        await engine.dispose()
