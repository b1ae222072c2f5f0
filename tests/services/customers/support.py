"""Helpers of the customers tests: accounts, call contexts, the world under test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from m3o.events.customers import TOPIC, Event
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.customers.handler import Customers
from m3o.services.customers.proto import customers_pb2 as pb
from support.services import TickingClock, forget_calls

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="signup", type="service", scopes=("service",))
START = datetime(2024, 1, 1, tzinfo=UTC)


def customer_account(customer: pb.Customer) -> Account:
    """The account a customer calls with (auth's account for it)."""
    return Account(id=customer.id, type="customer", scopes=("customer",), name=customer.email)


def call(
    method: str, account: Account | None = ADMIN, metadata: Mapping[str, str] | None = None
) -> CallContext:
    return CallContext(
        service="customers", method=method, account=account, metadata=dict(metadata or {})
    )


@dataclass
class World:
    handler: Customers
    auth: FakeAuthClient
    publisher: FakePublisher
    clock: TickingClock
    sessions: SessionFactory

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        assert all(isinstance(event, Event) for event in found)
        return [event for event in found if isinstance(event, Event)]

    def assert_all_in_transaction(self) -> None:
        assert all(p.in_transaction for p in self.publisher.published)

    async def create(self, email: str = "ann@example.com", status: str = "") -> pb.Customer:
        """A customer in ``status`` (unverified unless said), events of the setup cleared."""
        created = (
            await self.handler.create(pb.CreateRequest(email=email), call("Create"))
        ).customer
        if status == "verified":
            await self.handler.mark_verified(
                pb.MarkVerifiedRequest(id=created.id), call("MarkVerified")
            )
        elif status == "banned":
            await self.handler.ban(pb.BanRequest(id=created.id), call("Ban"))
        elif status == "deleted":
            await self.handler.delete(pb.DeleteRequest(id=created.id), call("Delete"))
        elif status:
            update = pb.Customer(id=created.id, status=status)
            await self.handler.update(pb.UpdateRequest(customer=update), call("Update"))
        self.forget_calls()
        return created

    def forget_calls(self) -> None:
        """Forget the events and auth calls so far (a test's setup is not its subject)."""
        self.publisher.published.clear()
        forget_calls(self.auth)

    async def read(self, customer_id: str) -> pb.Customer:
        return (await self.handler.read(pb.ReadRequest(id=customer_id), call("Read"))).customer
