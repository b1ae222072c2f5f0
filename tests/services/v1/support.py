"""Helpers of the v1 tests: accounts, call contexts, stand-ins, the world under test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from m3o.events.customers import TOPIC, Event
from m3o.runtime.auth import Account, CallContext, is_customer
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, M3OError, Unavailable
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from m3o.services.v1 import records
from m3o.services.v1.catalog import PublishedApis
from m3o.services.v1.handler import V1
from m3o.services.v1.keys.changes import KeyChanges
from m3o.services.v1.keys.imports import LegacyImport
from m3o.services.v1.keys.mirror import KeyMirror
from m3o.services.v1.owners import Project
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.records import KeyRow
from m3o.services.v1.settings import KeySettings
from m3o.services.v1.tables import keys
from m3o.services.v1.view import KeyRecord, read_key_record
from support.services import TickingClock, forget_calls

ANN = Account(id="ann", type="customer", scopes=("customer",), name="ann@example.com")
BOB = Account(id="bob", type="customer", scopes=("customer",), name="bob@example.com")
ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
GATEWAY = Account(id="gateway", type="service", scopes=("service",))
START = datetime(2024, 1, 1, tzinfo=UTC)
PEPPER = b"test pepper"
PUBLISHED = ("helloworld", "cache", "db")


def call(method: str, account: Account | None = ANN) -> CallContext:
    return CallContext(
        service="v1",
        method=method,
        account=account,
        metadata={"authorization": f"Bearer token-of-{account.id}"} if account else {},
    )


@dataclass
class ProjectsStandIn:
    """The caller's projects: a customer's default project unless the test says otherwise.
    As the projects service, it lists no projects of an admin's own (BadRequest), and reads
    only the projects in ``known``."""

    by_account: dict[str, list[Project]] = field(default_factory=dict)
    known: dict[str, Project] = field(default_factory=dict)
    error: M3OError | None = None
    asked: list[CallContext] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    """The project ids read, oldest first."""

    async def projects_of(self, ctx: CallContext) -> Sequence[Project]:
        self.asked.append(ctx)
        if self.error is not None:
            raise self.error
        assert ctx.account is not None
        if not is_customer(ctx.account):
            raise BadRequest("projects.list", "Missing billing_account_id")
        default = [Project(id=ctx.account.id, billing_account=ctx.account.id)]
        return self.by_account.get(ctx.account.id, default)

    async def project(self, ctx: CallContext, project_id: str) -> Project | None:
        self.read.append(project_id)
        if self.error is not None:
            raise self.error
        return self.known.get(project_id)


class FlakyCounters:
    """A counter store whose value writes can be made to fail (Unavailable)."""

    def __init__(self, inner: CounterStore) -> None:
        self.inner = inner
        self.fail_set = False
        self.fail_delete = False
        self.written: list[str] = []
        """Names given to set_value / set_if_absent, oldest first (failed writes too)."""

    async def set_value(self, key: str, value: str, *, ttl: timedelta | None = None) -> None:
        self.written.append(key)
        if self.fail_set:
            raise Unavailable("counters", "Counter store unavailable")
        await self.inner.set_value(key, value, ttl=ttl)

    async def set_if_absent(self, key: str, value: str, *, ttl: timedelta) -> bool:
        self.written.append(key)
        if self.fail_set:
            raise Unavailable("counters", "Counter store unavailable")
        return await self.inner.set_if_absent(key, value, ttl=ttl)

    async def delete(self, *keys: str) -> None:
        if self.fail_delete:
            raise Unavailable("counters", "Counter store unavailable")
        await self.inner.delete(*keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def catalog_of(*names: str) -> publicapi_pb.ListResponse:
    return publicapi_pb.ListResponse(apis=[publicapi_pb.PublicAPI(name=name) for name in names])


@dataclass
class World:
    handler: V1
    changes: KeyChanges
    auth: FakeAuthClient
    publicapi: FakePublicapiClient
    projects: ProjectsStandIn
    publisher: FakePublisher
    counters: FlakyCounters
    sessions: SessionFactory
    clock: TickingClock

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        return [event for event in found if isinstance(event, Event)]

    def assert_all_in_transaction(self) -> None:
        assert self.publisher.published
        assert all(p.in_transaction for p in self.publisher.published)

    def forget_calls(self) -> None:
        """Forget events and calls so far (a test's setup is not its subject)."""
        self.publisher.published.clear()
        forget_calls(self.auth, self.publicapi)
        self.projects.asked.clear()
        self.projects.read.clear()

    async def generate(
        self,
        account: Account = ANN,
        scopes: Sequence[str] = ("helloworld",),
        description: str = "my key",
        project_id: str = "",
        expires_in: int = 0,
    ) -> pb.GenerateKeyResponse:
        request = pb.GenerateKeyRequest(
            scopes=list(scopes),
            description=description,
            project_id=project_id,
            expires_in=expires_in,
        )
        return await self.handler.generate_key(request, call("GenerateKey", account))

    async def all_rows(self) -> list[KeyRow]:
        """Every key row, newest first."""
        async with self.sessions() as session:
            owners = set((await session.scalars(select(keys.c.owner))).all())
            return await records.of_projects(session, owners)

    async def row(self, key_id: str) -> KeyRow | None:
        async with self.sessions() as session:
            return await records.find(session, key_id)

    async def mirrored(self, key_hash: str) -> KeyRecord | None:
        return await read_key_record(self.counters.inner, key_hash, now=self.clock.now.timestamp())


def make_world(
    sessions: SessionFactory, counters: CounterStore, settings: KeySettings | None = None
) -> World:
    auth = FakeAuthClient()
    publicapi = FakePublicapiClient()
    publicapi.list.returns(catalog_of(*PUBLISHED))
    projects = ProjectsStandIn()
    publisher = FakePublisher()
    flaky = FlakyCounters(counters)
    clock = TickingClock(START)
    mirror = KeyMirror(flaky, clock=clock)  # the rest of the store is delegated
    changes = KeyChanges(
        sessions=sessions, publisher=publisher, mirror=mirror, auth=auth, clock=clock
    )
    handler = V1(
        sessions=sessions,
        publisher=publisher,
        mirror=mirror,
        changes=changes,
        imports=LegacyImport(sessions=sessions, auth=auth, clock=clock),
        auth=auth,
        projects=projects,
        catalog=PublishedApis(publicapi),
        settings=settings or KeySettings(pepper=PEPPER),
        clock=clock,
    )
    return World(handler, changes, auth, publicapi, projects, publisher, flaky, sessions, clock)
