"""Helpers of the projects tests: accounts, call contexts, the world under test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from m3o.events.projects import TOPIC, Event
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.projects.handler import Projects
from m3o.services.projects.proto import projects_pb2 as pb
from m3o.services.projects.tables import accounts
from support.services import TickingClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="v1", type="service", scopes=("service",))
APIKEY = Account(id="key-1", type="apikey", scopes=("*",), metadata={"apikey_owner": "p1"})
START = datetime(2024, 1, 1, tzinfo=UTC)
LIMITS: Mapping[str, int] = {"free": 1, "solo": 3, "pro": 10}


def customer(customer_id: str) -> Account:
    return Account(
        id=customer_id, type="customer", scopes=("customer",), name=f"{customer_id}@example.com"
    )


ANN = customer("ann")
BOB = customer("bob")


def call(method: str, account: Account | None = ANN) -> CallContext:
    return CallContext(service="projects", method=method, account=account)


@dataclass
class World:
    handler: Projects
    customers: FakeCustomersClient
    publisher: FakePublisher
    sessions: SessionFactory
    clock: TickingClock = field(default_factory=lambda: TickingClock(START))

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        assert all(isinstance(event, Event) for event in found)
        return [event for event in found if isinstance(event, Event)]

    def assert_all_in_transaction(self) -> None:
        assert self.publisher.published
        assert all(p.in_transaction for p in self.publisher.published)

    def forget_events(self) -> None:
        self.publisher.published.clear()

    async def create(self, name: str = "site", account: Account = ANN) -> pb.Project:
        response = await self.handler.create(pb.CreateRequest(name=name), call("Create", account))
        return response.project

    async def list(
        self, account: Account | None = ANN, billing_account_id: str = ""
    ) -> list[pb.Project]:
        request = pb.ListRequest(billing_account_id=billing_account_id)
        return list((await self.handler.list(request, call("List", account))).projects)

    async def account_row(self, account_id: str) -> dict[str, object] | None:
        async with self.sessions() as session:
            row = (
                await session.execute(select(accounts).where(accounts.c.id == account_id))
            ).first()
        return None if row is None else dict(row._mapping)


def default_project(customer_id: str) -> pb.Project:
    return pb.Project(
        id=customer_id,
        name="default",
        billing_account=customer_id,
        members=[pb.Member(id=customer_id, roles=["admin"])],
    )
