"""The ``local`` profile: every service and the HTTP front in one process.

SQLite file, event log and counters under the data directory; service-to-service calls
in-process. Migrations are applied at start.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from m3o.gateway.health import ReadinessCheck
from m3o.gateway.metrics import Metrics
from m3o.platform.bootstrap import AdminAccount, ensure_admin
from m3o.platform.clients import ClientFactory
from m3o.platform.examples import publish_examples
from m3o.platform.front import build_front
from m3o.platform.identity import Identity
from m3o.platform.node import Node
from m3o.platform.services import ACCOUNT_NAMES, SERVICES
from m3o.runtime.config import Config, ConfigStore, build_config
from m3o.runtime.counters_sqlite import SqlCounterStore
from m3o.runtime.event_log_sqlite import sql_event_bus
from m3o.runtime.migrate import upgrade
from m3o.runtime.rpc import InProcessTransport
from m3o.runtime.store import create_engine, session_factory

__all__ = ["LocalPlatform", "open_local"]

ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password


@dataclass
class LocalPlatform:
    config: Config
    engine: AsyncEngine
    node: Node
    app: Starlette
    admin: AdminAccount
    admin_password_file: Path

    async def close(self) -> None:
        await self.node.stop()
        await self.node.counters.close()
        await self.engine.dispose()


def _database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return ReadinessCheck("database", check)


async def open_local(data_dir: Path, env: Mapping[str, str]) -> LocalPlatform:
    """Migrate the data directory's database, build and start every service.

    The caller serves ``app``; its shut-down stops consumers and crons and closes the
    database.
    """
    _make_dir(data_dir)
    bootstrap = build_config({}, env)
    engine = create_engine(bootstrap.database.resolved_url(data_dir))
    await upgrade(engine)
    sessions = session_factory(engine)
    config = await ConfigStore(sessions).load(env)
    counters = SqlCounterStore(engine)
    bus = sql_event_bus(engine)
    local = InProcessTransport()
    if not config.auth.service_secret.get_secret_value():
        # One process: a secret of its own, never stored, is enough for service accounts.
        auth = config.auth.model_copy(
            update={"service_secret": SecretStr(secrets.token_urlsafe(32))}
        )
        config = config.model_copy(update={"auth": auth})
    secret = config.auth.service_secret.get_secret_value()
    identity = Identity(local, counters, secret)
    metrics = Metrics()
    node = Node(
        config=config,
        sessions=sessions,
        counters=counters,
        bus=bus,
        identity=identity,
        metrics=metrics,
        local=local,
        transport=local,
        account_names=ACCOUNT_NAMES,
    )
    await node.host(SERVICES)
    await node.start()
    password_file = data_dir / ADMIN_PASSWORD_FILE
    admin = await ensure_admin(
        ClientFactory(local, identity.token_source("platform")),
        config.auth.admin_password.get_secret_value(),
        password_file,
    )
    await publish_examples(ClientFactory(local, identity.token_source("platform")))
    platform = LocalPlatform(config, engine, node, Starlette(), admin, password_file)
    platform.app = build_front(
        config=config,
        transport=local,
        directory=node.directory(),
        local_services=node.hosted(),
        credentials=identity.token_source("gateway"),
        counters=counters,
        publisher=bus.publisher,
        sessions=sessions,
        metrics=metrics,
        readiness=[_database_check(engine), ReadinessCheck("counters", counters.ping)],
        on_shutdown=[platform.close],
    )
    return platform


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
