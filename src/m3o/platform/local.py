"""The ``local`` profile: every service and the HTTP front in one process.

SQLite file, event log and counters under the data directory; service-to-service calls
in-process. Migrations are applied at start.

The data directory is checked and kept private first (``data_dir.py``); a problem with it
raises :class:`~m3o.platform.data_dir.StartupError` (one line). The key-encryption key of
the signing keys is ``auth.key_encryption_key`` when configured, else the data directory's
``key-encryption-key`` file, made on first start.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from m3o.gateway.health import ReadinessCheck
from m3o.gateway.metrics import Metrics
from m3o.gateway.v1.holds import Holds
from m3o.platform.bootstrap import AdminAccount, ensure_admin
from m3o.platform.clients import ClientFactory
from m3o.platform.data_dir import (
    KEK_FILE,
    StartupError,
    check_sqlite_file,
    hold_database,
    key_encryption_key,
    prepare_data_dir,
)
from m3o.platform.dead_letter_alerts import DeadLetterAlerts
from m3o.platform.examples import publish_examples
from m3o.platform.front import build_front
from m3o.platform.health import ProcessHealth
from m3o.platform.identity import Identity
from m3o.platform.node import Node
from m3o.platform.served_charges import OwnedCharges
from m3o.platform.services import ACCOUNT_NAMES, SERVICES
from m3o.platform.tracing import start_process_tracing
from m3o.runtime.blocking import run_blocking
from m3o.runtime.config import Config, build_config
from m3o.runtime.config.stored import ConfigStore
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.owned import OwnedCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.events import EnvelopePublisher
from m3o.runtime.events.sqlite import release_claims, sql_event_log
from m3o.runtime.events.tables import event_log
from m3o.runtime.logging import get_logger
from m3o.runtime.logging.tracing import stop_tracing
from m3o.runtime.rpc import InProcessTransport
from m3o.runtime.store import SessionFactory, create_engine, session_factory
from m3o.runtime.store.inline_sqlite import WalCheckpoints
from m3o.runtime.store.migrate import upgrade
from m3o.services.alerts.proto.client import AlertsClient
from m3o.services.auth.key_encryption import kek_id, parse_kek_list
from m3o.services.auth.signing_keys import sealed_with

__all__ = ["LocalPlatform", "StartupError", "open_local"]

_log = get_logger(__name__)

ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password


@dataclass
class LocalPlatform:
    config: Config
    engine: AsyncEngine
    node: Node
    app: Starlette
    admin: AdminAccount
    admin_password_file: Path
    traced: bool = False
    """This platform started the process's tracing (and stops it on close)."""
    held: IO[bytes] | None = None
    """The lock on the SQLite database (``hold_database``), released on close."""
    checkpoints: WalCheckpoints | None = None
    """The SQLite log's checkpoints, stopped (after a last one) on close."""

    async def close(self) -> None:
        await self.node.stop()
        await self.node.counters.close()
        await self.engine.dispose()
        if self.checkpoints is not None:
            await self.checkpoints.stop()
        if self.held is not None:
            self.held.close()
        if self.traced:
            await run_blocking(stop_tracing)  # exports what is pending: network I/O


def _database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return ReadinessCheck("database", check)


def _event_log_check(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """The event stream of the local profile: its event log can be read."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(select(event_log.c.id).limit(1))

    return check


async def open_local(
    data_dir: Path, env: Mapping[str, str], *, address: tuple[str, int] | None = None
) -> LocalPlatform:
    """Migrate the data directory's database, build and start every service.

    ``address`` is the host and port the caller will serve ``app`` on: it replaces
    ``server.host`` and ``server.port``, so services that call the platform's own front
    (endtoend) reach it there.

    The caller serves ``app``; its shut-down stops consumers and crons and closes the
    database. Raises :class:`StartupError` or :class:`~m3o.runtime.config.ConfigError`
    (one line each) when the data directory or the configuration cannot be used.
    """
    prepare_data_dir(data_dir)
    bootstrap = build_config({}, env)
    url = bootstrap.database.resolved_url(data_dir)
    parsed = make_url(url)
    held = checkpoints = None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        check_sqlite_file(Path(parsed.database))
        held = hold_database(Path(parsed.database))
        # The log is checkpointed on a thread, never by a commit on the loop's thread.
        checkpoints = WalCheckpoints(Path(parsed.database))
    engine = create_engine(url, checkpoint_in_background=checkpoints is not None)
    if checkpoints is not None:
        checkpoints.start()
    try:
        platform = await _open(engine, data_dir, env, address)
    except BaseException as exc:
        await engine.dispose()
        if checkpoints is not None:
            await checkpoints.stop()
        if held is not None:
            held.close()
        if isinstance(exc, DatabaseError):
            where = parsed.database or parsed.render_as_string(hide_password=True)
            reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise StartupError(f"{where}: the database cannot be used ({reason})") from None
        raise
    platform.held, platform.checkpoints = held, checkpoints
    return platform


async def _open(
    engine: AsyncEngine,
    data_dir: Path,
    env: Mapping[str, str],
    address: tuple[str, int] | None,
) -> LocalPlatform:
    await upgrade(engine)
    sessions = session_factory(engine)
    config = await ConfigStore(sessions).load(env)
    if address is not None:
        host, port = address
        server = config.server.model_copy(update={"host": host, "port": port})
        config = config.model_copy(update={"server": server})
    config = await _with_local_secrets(config, sessions, data_dir)
    bus, events = sql_event_log(engine)
    # On SQLite this process owns the database (it is locked): the counters of calls live
    # in memory, written behind, and a call's charge is committed with its event before it
    # is answered. A shared PostgreSQL database keeps every counter in the database.
    counters: CounterStore
    served = None
    if engine.dialect.name == "sqlite":
        released = await release_claims(engine)
        if released:
            _log.warning("serve.claims_released", count=released)
        publisher = bus.publisher
        assert isinstance(publisher, EnvelopePublisher)  # the event log's publisher is
        # Before any counter is owned: holds an earlier version left are finished on the
        # database itself.
        await Holds(SqlCounterStore(engine)).finish_all(publisher.publish_envelopes)
        counters = OwnedCounterStore(engine)
        served = OwnedCharges(counters, events.write_on_driver)
    else:
        counters = SqlCounterStore(engine)
    local = InProcessTransport()
    secret = config.auth.service_secret.get_secret_value()
    identity = Identity(local, counters, secret)
    bus.on_dead_letter(DeadLetterAlerts(AlertsClient(local, identity.token_source("platform"))))
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
    node.health = ProcessHealth(
        services=[s.name for s in SERVICES],
        hosted=node.service_names,
        address=None,  # every service is hosted here: one that is not is not running
        events=_event_log_check(engine),
    )
    try:
        await node.host(SERVICES)
        await node.start()
    except BaseException:
        await node.stop()
        await counters.close()
        raise
    password_file = data_dir / ADMIN_PASSWORD_FILE
    admin = await ensure_admin(
        ClientFactory(local, identity.token_source("platform")),
        config.auth.admin_password.get_secret_value(),
        password_file,
    )
    await publish_examples(ClientFactory(local, identity.token_source("platform")))
    platform = LocalPlatform(config, engine, node, Starlette(), admin, password_file)
    platform.traced = start_process_tracing(config, "m3o")
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
        served=served,
        catalog_wait=None,  # publicapi is in this process: its first answer is soon
    )
    return platform


async def _with_local_secrets(config: Config, sessions: SessionFactory, data_dir: Path) -> Config:
    """``config`` with what one process makes up for itself: a service secret of its own
    (never stored), and the key-encryption key from the data directory unless configured."""
    updates: dict[str, object] = {}
    if not config.auth.service_secret.get_secret_value():
        updates["service_secret"] = SecretStr(secrets.token_urlsafe(32))
    if not config.auth.key_encryption_key.get_secret_value():
        previous = parse_kek_list(config.auth.previous_key_encryption_keys.get_secret_value())
        needed = await sealed_with(sessions) - {kek_id(key) for key in previous}
        kek = key_encryption_key(data_dir / KEK_FILE, needed)
        updates["key_encryption_key"] = SecretStr(kek)
    if not updates:
        return config
    return config.model_copy(update={"auth": config.auth.model_copy(update=updates)})
