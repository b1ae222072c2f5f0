"""The ``platform`` profile: one service (gRPC) or the HTTP front per process.

PostgreSQL for the database and the event outbox, Redis for counters and event streams,
gRPC to other services at the addresses ``server.service_address_template`` gives
(Kubernetes service DNS). Migrations are applied by ``m3o migrate`` (a deploy job), not
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.gateway.health import ReadinessCheck, Stopping
from m3o.gateway.metrics import Metrics
from m3o.platform.bootstrap import ensure_admin
from m3o.platform.clients import ClientFactory
from m3o.platform.dead_letter_alerts import DeadLetterAlerts
from m3o.platform.draining_server import DrainingServer
from m3o.platform.health import ProcessHealth
from m3o.platform.heap import freeze_started
from m3o.platform.identity import Identity
from m3o.platform.metrics_endpoint import MetricsEndpoint
from m3o.platform.node import Node
from m3o.platform.service_names import ACCOUNT_NAMES, NAMES
from m3o.platform.tracing import start_process_tracing
from m3o.runtime.blocking import run_blocking
from m3o.runtime.config import Config, ConfigError, build_config
from m3o.runtime.config.stored import ConfigStore
from m3o.runtime.counters.redis import RedisCounterStore, redis_counter_store
from m3o.runtime.events.redis import redis_event_bus, stream_first_publisher
from m3o.runtime.events.redis_served import RedisServedHolds
from m3o.runtime.logging import configure_logging, get_logger
from m3o.runtime.logging.tracing import stop_tracing
from m3o.runtime.rpc import (
    GrpcTransport,
    InProcessTransport,
    ServiceRouter,
    Transport,
    grpc_handlers,
    service_channel,
)
from m3o.runtime.service import ServiceDefinition
from m3o.runtime.store import create_engine, session_factory
from m3o.runtime.store.redis import redis_client
from m3o.services.alerts.proto.client import AlertsClient

__all__ = ["run_gateway", "run_service"]

_log = get_logger(__name__)

GRACE_SECONDS = 10.0


@dataclass
class _Process:
    config: Config
    engine: AsyncEngine
    counters: RedisCounterStore
    redis: aioredis.Redis
    traced: bool = False

    async def close(self) -> None:
        await self.counters.close()
        await self.redis.aclose()
        await self.engine.dispose()
        if self.traced:
            await run_blocking(stop_tracing)  # exports what is pending: network I/O


async def _open(env: Mapping[str, str], service_name: str) -> _Process:
    """Configuration, database, Redis and tracing of a platform process named
    ``service_name`` (``m3o-<service>``, ``m3o-gateway``)."""
    bootstrap = build_config({}, env)
    url = bootstrap.database.url
    if not url or make_url(url).get_backend_name() != "postgresql":
        raise ConfigError(
            "database.url: the platform profile needs a PostgreSQL URL "
            "(M3O_DATABASE__URL=postgresql://...)",
            "database.url",
        )
    engine = create_engine(url, pool_size=bootstrap.database.pool_size)
    config = await ConfigStore(session_factory(engine)).load(env)
    configure_logging(config.server.log_level, json=config.server.log_json)
    if not config.auth.service_secret.get_secret_value():
        raise ConfigError(
            "auth.service_secret: required in the platform profile", "auth.service_secret"
        )
    redis_url = config.redis.connection_url()
    counters = redis_counter_store(redis_url)
    client = redis_client(redis_url, timeout=10, connect_timeout=5)
    traced = start_process_tracing(config, service_name)
    return _Process(config, engine, counters, client, traced)


def _router(config: Config, local: InProcessTransport, hosted: set[str]) -> ServiceRouter:
    def transport_for(service: str) -> Transport:
        if service in hosted:
            return local
        return GrpcTransport(service_channel(config.server.service_address(service)))

    return ServiceRouter(transport_for)


def _stop_signals() -> asyncio.Queue[int]:
    """SIGINT and SIGTERM, as they arrive."""
    signals: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    return signals


async def run_service(definition: ServiceDefinition, env: Mapping[str, str]) -> None:
    """Serve ``definition`` over gRPC until SIGINT / SIGTERM, and its metrics over HTTP on
    ``server.metrics_port`` when set."""
    process = await _open(env, f"m3o-{definition.name}")
    config = process.config
    if definition.name == "auth" and not config.auth.key_encryption_key.get_secret_value():
        await process.close()
        raise ConfigError(
            "auth.key_encryption_key: required by the auth service in the platform profile "
            "(M3O_AUTH__KEY_ENCRYPTION_KEY: 32 random bytes in base64, from a Secret)",
            "auth.key_encryption_key",
        )
    metrics = Metrics()
    endpoint: MetricsEndpoint | None = None
    if config.server.metrics_port:
        try:
            endpoint = MetricsEndpoint(metrics, config.server.host, config.server.metrics_port)
        except OSError as exc:
            await process.close()
            where = f"{config.server.host}:{config.server.metrics_port}"
            raise ConfigError(
                f"server.metrics_port: cannot serve metrics on {where} ({exc.strerror or exc})",
                "server.metrics_port",
            ) from None
        _log.info("service.metrics", service=definition.name, port=endpoint.port)
    try:
        await _serve(definition, process, metrics)
    finally:
        if endpoint is not None:
            await run_blocking(endpoint.close)


async def _serve(definition: ServiceDefinition, process: _Process, metrics: Metrics) -> None:
    config = process.config
    local = InProcessTransport()
    router = _router(config, local, {definition.name})
    identity = Identity(router, process.counters, config.auth.service_secret.get_secret_value())
    bus = redis_event_bus(process.engine, process.redis)
    bus.on_dead_letter(DeadLetterAlerts(AlertsClient(router, identity.token_source("platform"))))
    node = Node(
        config=config,
        sessions=session_factory(process.engine),
        counters=process.counters,
        bus=bus,
        identity=identity,
        metrics=metrics,
        local=local,
        transport=router,
        account_names=ACCOUNT_NAMES,
    )

    async def redis_answers() -> None:
        await process.redis.ping()

    health = ProcessHealth(
        services=list(NAMES),
        hosted=lambda: (definition.name,),
        address=config.server.service_address,
        events=redis_answers,
    )
    node.health = health
    await node.host([definition])
    await node.start()
    admin_password = config.auth.admin_password.get_secret_value()
    if definition.name == "auth" and admin_password:
        await ensure_admin(
            ClientFactory(router, identity.token_source("platform")), admin_password, None
        )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc_handlers(d) for d in node.dispatchers])
    checker = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    own = config.server.service_address(definition.name)
    # A unix socket address is this very process's to listen on (tests, single hosts).
    address = own if own.startswith("unix:") else f"[::]:{config.server.grpc_port}"
    server.add_insecure_port(address)
    await server.start()
    for spec in definition.specs:
        await checker.set(spec.full_name, health_pb2.HealthCheckResponse.SERVING)
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    _log.info("service.serving", service=definition.name, address=address)
    freeze_started()
    signals = _stop_signals()
    try:
        await signals.get()
        # Health checks answer NOT_SERVING first; calls are still served for the
        # shut-down delay (a second signal ends it), then drained for GRACE_SECONDS.
        await checker.enter_graceful_shutdown()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config.server.shutdown_delay.total_seconds()):
                await signals.get()
    finally:
        await checker.enter_graceful_shutdown()
        await server.stop(GRACE_SECONDS)
        await node.stop()
        await health.close()
        await process.close()


async def run_gateway(env: Mapping[str, str]) -> None:
    """Serve the HTTP front, calling every service over gRPC, until SIGINT / SIGTERM."""
    # Here, not at the top: a process running one service needs neither (see
    # m3o.platform.service_names).
    from m3o.platform.front import build_front
    from m3o.platform.services import SERVICES

    process = await _open(env, "m3o-gateway")
    config = process.config
    router = _router(config, InProcessTransport(), set())
    identity = Identity(router, process.counters, config.auth.service_secret.get_secret_value())
    # A served call's request event goes to its stream as its hold is removed, in one
    # script run (RedisServedHolds); the bus relays the events that had to wait in the
    # outbox while Redis was unreachable, and those the public API spilled there past
    # its in-memory buffer (calls without a hold).
    bus = redis_event_bus(process.engine, process.redis)
    await bus.start()
    requests = stream_first_publisher(process.engine, process.redis)
    stopping = Stopping()
    app = build_front(
        config=config,
        transport=router,
        directory={d.name: list(d.specs) for d in SERVICES if d.platform_api},
        local_services={d.name: list(d.specs) for d in SERVICES if not d.platform_api},
        credentials=identity.token_source("gateway"),
        counters=process.counters,
        publisher=requests,
        sessions=None,
        spill=requests,
        served_holds=RedisServedHolds(process.counters),
        metrics=Metrics(),
        readiness=[stopping.check, ReadinessCheck("counters", process.counters.ping)],
        on_shutdown=[process.close, bus.stop],
    )
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            # The client's address is the front's to work out, from api.trusted_proxies
            # only; uvicorn's own rule would believe X-Forwarded-For from 127.0.0.1.
            proxy_headers=False,
            timeout_graceful_shutdown=int(GRACE_SECONDS),
        ),
        stopping,
        delay=config.server.shutdown_delay.total_seconds(),
    )
    freeze_started()
    await server.serve()
