"""One process of the platform: the services it hosts and what they share.

A :class:`Node` builds each hosted service from its definition with the process's
database sessions, publisher, counter store, config and clients, registers its handlers
behind dispatchers (authentication, access rules, metrics), subscribes its consumers and
schedules its crons. ``m3o serve`` hosts every service in one node; ``m3o run <service>``
hosts one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from m3o.gateway.metrics import Metrics
from m3o.gateway.routing import ServiceDirectory
from m3o.platform.clients import ClientFactory
from m3o.platform.identity import Identity
from m3o.runtime.config import Config
from m3o.runtime.counters import CounterStore
from m3o.runtime.events import EventBus
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import Dispatcher, InProcessTransport, ServiceSpec, Transport
from m3o.runtime.service import Dependencies, HealthProbe, ServiceDefinition
from m3o.runtime.service.scheduler import Scheduler
from m3o.runtime.store import SessionFactory

__all__ = ["Node"]

_log = get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class Node:
    config: Config
    sessions: SessionFactory
    counters: CounterStore
    bus: EventBus
    identity: Identity
    metrics: Metrics
    local: InProcessTransport
    """Dispatchers of the services hosted here."""
    transport: Transport
    """How this node's services reach any service (local ones included)."""
    account_names: Sequence[str]
    health: HealthProbe | None = None
    """How the status service checks the platform (set before :meth:`host`)."""
    dispatchers: list[Dispatcher] = field(default_factory=list)
    _unrouted: set[str] = field(default_factory=set)
    _on_start: list[tuple[str, Sequence[Hook]]] = field(default_factory=list)
    _on_stop: list[Hook] = field(default_factory=list)
    _scheduler: Scheduler | None = None

    def _dependencies(self, definition: ServiceDefinition) -> Dependencies:
        return Dependencies(
            name=definition.name,
            sessions=self.sessions,
            publisher=self.bus.publisher,
            clients=ClientFactory(
                self.transport, self.identity.token_source(definition.account_id)
            ),
            config=self.config,
            counters=self.counters,
            service_names=tuple(self.account_names),
            on_rules_changed=self.identity.rules.invalidate,
            health=self.health,
        )

    async def host(self, definitions: Sequence[ServiceDefinition]) -> None:
        """Build and register ``definitions`` in order; :meth:`start` runs them."""
        self._scheduler = Scheduler(self.counters)
        for definition in definitions:
            parts = await definition.build(self._dependencies(definition))
            if not definition.platform_api:
                self._unrouted.update(spec.service for spec in definition.specs)
            for handler in parts.handlers:
                dispatcher = Dispatcher(
                    handler.spec,
                    handler.implementation,
                    authenticator=self.identity.authenticator,
                    rules=self.identity.rules,
                    observer=self.metrics,
                    public=handler.public,
                )
                self.local.register(dispatcher)
                self.dispatchers.append(dispatcher)
            for consumer in parts.consumers:
                consumer.subscribe(self.bus, definition.name)
            for retired in parts.retired:
                retired.retire(self.bus, definition.name)
            for cron in parts.crons:
                self._scheduler.add(definition.name, cron)
            self._on_start.append((definition.name, parts.on_start))
            self._on_stop.extend(parts.on_stop)

    def directory(self) -> ServiceDirectory:
        """The hosted services the platform API routes to."""
        found: dict[str, list[ServiceSpec]] = {}
        for dispatcher in self.dispatchers:
            if dispatcher.spec.service in self._unrouted:
                continue
            found.setdefault(dispatcher.spec.service, []).append(dispatcher.spec)
        return found

    def service_names(self) -> tuple[str, ...]:
        """The name of every service hosted here, those without RPC methods (consumers and
        crons only) included."""
        return tuple(name for name, _hooks in self._on_start)

    def hosted(self) -> ServiceDirectory:
        """Every service hosted here, those off the platform API included."""
        found: dict[str, list[ServiceSpec]] = {}
        for dispatcher in self.dispatchers:
            found.setdefault(dispatcher.spec.service, []).append(dispatcher.spec)
        return found

    async def start(self) -> None:
        """Start consuming, then run each service's start hooks in order, then the crons.

        The bus starts first so that its consumer groups exist before any start hook
        publishes; a consumer that needs a service not started yet fails and is retried.
        """
        await self.bus.start()
        for name, hooks in self._on_start:
            for hook in hooks:
                await hook()
            _log.info("service.ready", service=name)
        if self._scheduler is not None:
            await self._scheduler.start()

    async def stop(self) -> None:
        """Stop crons, then consumers (finishing in-flight events), then services' hooks."""
        if self._scheduler is not None:
            await self._scheduler.stop()
        await self.bus.stop()
        for hook in reversed(self._on_stop):
            await hook()
