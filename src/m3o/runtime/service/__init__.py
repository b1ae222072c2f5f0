"""Defining a service: what it serves, consumes and runs on a schedule, and what it needs.

A service package's ``service.py`` exports one :class:`ServiceDefinition`. Its ``build``
receives the :class:`Dependencies` the process created (database sessions, publisher,
counter store, config, clients of other services) and returns the service's
:class:`ServiceParts`. The same definition runs inside ``m3o serve`` (every service in one
process) and ``m3o run <service>`` (one service per process).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from sqlalchemy import MetaData

from m3o.runtime.config import Config
from m3o.runtime.counters import CounterStore
from m3o.runtime.events import BatchHandler, EventBus, EventHandler, Publisher
from m3o.runtime.rpc import Client, ServiceSpec, TokenSource, Transport
from m3o.runtime.store import SessionFactory

__all__ = [
    "BatchConsumer",
    "Clients",
    "Consumer",
    "Cron",
    "Dependencies",
    "Handler",
    "HealthProbe",
    "RetiredGroup",
    "ServiceDefinition",
    "ServiceParts",
]

C = TypeVar("C", bound=Client)


class Clients(Protocol):
    """Makes typed clients of other services that call with this service's own account."""

    def get(self, client_type: Callable[[Transport, TokenSource | None], C]) -> C: ...


class HealthProbe(Protocol):
    """What a process can tell about the platform's parts beyond its own (the status
    service asks it). Each check returns when the part answers and raises when it does not.

    In ``m3o serve`` a service is running when it is hosted in the process; in the platform
    profile a service other than the process's own is asked over gRPC (``grpc.health.v1``).
    """

    @property
    def services(self) -> tuple[str, ...]:
        """The services the platform defines (the names ``service`` can check)."""
        ...

    async def service(self, name: str, timeout: float) -> None:
        """Return when service ``name`` is serving; raise when it is not (or unknown)."""
        ...

    async def events(self) -> None:
        """Return when the event stream answers; raise when it does not."""
        ...


@dataclass(frozen=True, slots=True)
class Handler:
    """One protobuf service implementation. ``public`` methods skip the access rules."""

    spec: ServiceSpec
    implementation: object
    public: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Consumer:
    """Consume ``topic`` in the group ``<service>-<topic>`` (or ``group`` when set).

    A failed event is retried after ``backoff_base`` doubling up to ``backoff_max``, at most
    ``max_attempts`` times, then dead-lettered. ``concurrency`` events are handled at once.
    """

    topic: str
    handle: EventHandler
    group: str = ""
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(minutes=5)
    concurrency: int = 1

    def subscribe(self, bus: EventBus, service: str) -> None:
        """Register with ``bus`` as a consumer of service ``service``."""
        bus.subscribe(
            self.topic,
            self.group or f"{service}-{self.topic}",
            self.handle,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            concurrency=self.concurrency,
        )


@dataclass(frozen=True, slots=True)
class BatchConsumer:
    """Consume ``topic`` as :class:`Consumer` does, ``handle`` receiving the events claimed
    together (at most ``max_batch``) in one call; a claim that found fewer waits ``linger``
    for more. See :meth:`~m3o.runtime.events.EventBus.subscribe_batch`."""

    topic: str
    handle: BatchHandler
    group: str = ""
    max_batch: int = 64
    linger: timedelta = timedelta(0)
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(minutes=5)

    def subscribe(self, bus: EventBus, service: str) -> None:
        """Register with ``bus`` as a consumer of service ``service``."""
        bus.subscribe_batch(
            self.topic,
            self.group or f"{service}-{self.topic}",
            self.handle,
            max_batch=self.max_batch,
            linger=self.linger,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
        )


@dataclass(frozen=True, slots=True)
class RetiredGroup:
    """A group of ``topic`` this service does not consume (anymore): ``<service>-<topic>``,
    or ``group`` when set. Retired as the bus starts, so events stop piling up for it (see
    :meth:`~m3o.runtime.events.EventBus.retire`)."""

    topic: str
    group: str = ""

    def retire(self, bus: EventBus, service: str) -> None:
        """Have ``bus`` retire the group of service ``service``."""
        bus.retire(self.topic, self.group or f"{service}-{self.topic}")


@dataclass(frozen=True, slots=True)
class Cron:
    """Run ``run`` every ``every``; once at start too when ``at_start``."""

    name: str
    every: timedelta
    run: Callable[[], Awaitable[None]]
    at_start: bool = False


@dataclass(frozen=True, slots=True)
class ServiceParts:
    handlers: Sequence[Handler]
    consumers: Sequence[Consumer | BatchConsumer] = ()
    retired: Sequence[RetiredGroup] = ()
    crons: Sequence[Cron] = ()
    on_start: Sequence[Callable[[], Awaitable[None]]] = ()
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What the process gives a service."""

    name: str
    sessions: SessionFactory
    publisher: Publisher
    clients: Clients
    config: Config
    counters: CounterStore
    service_names: tuple[str, ...] = ()
    """Every name that gets a service account (the auth service makes sure each has one)."""
    on_rules_changed: Callable[[], None] | None = None
    """Called after an access rule changes (the process's cached rules forget theirs)."""
    health: HealthProbe | None = None
    """How the process checks the platform's services and event stream (the status
    service's); None where nothing asks."""


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A service: its name, how to build it, what it serves and the tables it owns.

    ``specs`` lists the protobuf services it serves, so that a gateway in another
    process can route to it without building it. ``metadata`` holds the tables it owns:
    migrations and the tests create every table from the platform's list of services.
    """

    name: str
    build: Callable[[Dependencies], Awaitable[ServiceParts]]
    specs: Sequence[ServiceSpec] = ()
    metadata: MetaData | None = None
    platform_api: bool = True
    """Served on the HTTP front's platform API (``/<service>/<endpoint>``). False for APIs
    published to customers, such as helloworld: they are reached only through ``/v1``,
    where calls are authorised, admitted and metered; and for services the front serves
    through a route of its own (status, whose answer is an HTTP status and a map)."""
    account: str = ""
    """The id of the service's own account, when it is not ``name`` (the ``admin``
    service's is ``admin-service``: ``admin`` is the operator's account)."""

    @property
    def account_id(self) -> str:
        return self.account or self.name
