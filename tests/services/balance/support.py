"""Helpers of the balance tests: accounts, call contexts, the gateway's admission, and the
world under test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from m3o.events.customers import TOPIC, Event, EventType
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP, AdmissionDecision, AdmissionRequest
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.balance.balances import Balances
from m3o.services.balance.handler import Balance
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.balance.proto import balance_pb2 as pb
from m3o.services.balance.tables import accounts, adjustments
from m3o.services.customers.proto.fakes import FakeCustomersClient
from support.services import TickingClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="signup", type="service", scopes=("service",))
START = datetime(2024, 1, 1, tzinfo=UTC)
ANN = "ann-0001"
BOB = "bob-0002"


def customer(customer_id: str) -> Account:
    return Account(id=customer_id, type="customer", scopes=("customer",))


def call(method: str, account: Account | None = ADMIN) -> CallContext:
    return CallContext(service="balance", method=method, account=account)


def paid_call(customer_id: str, price: int, n: int = 0) -> AdmissionRequest:
    """The gateway's admission of one call to a paid endpoint billed to ``customer_id``."""
    return AdmissionRequest(
        rate_key=f"test:rate:{customer_id}:{n}",
        rate_limit=1_000_000,
        cap=NO_CAP,
        cap_key=f"test:cap:{customer_id}",
        price=price,
        free_key=f"test:free:{customer_id}",
        free_quota=0,
        endpoint_key=f"test:endpoint:{customer_id}",
        endpoint_quota=0,
        total_key=f"test:total:{customer_id}",
        balance_key=hot_key(customer_id),
        debited_key=debited_key(customer_id),
    )


@dataclass
class Ledger:
    """What the database holds for a customer."""

    deltas: list[int]
    balance: int | None
    recorded: int | None

    @property
    def total(self) -> int:
        return sum(self.deltas)


@dataclass
class World:
    handler: Balance
    balances: Balances
    customers: FakeCustomersClient
    publisher: FakePublisher
    counters: CounterStore
    sessions: SessionFactory

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        return [event for event in found if isinstance(event, Event)]

    def event_types(self) -> list[str]:
        return [EventType.Name(event.type) for event in self.events()]

    async def increment(
        self, customer_id: str, delta: int, key: str = "", account: Account = ADMIN
    ) -> int:
        request = pb.IncrementRequest(
            customer_id=customer_id,
            delta=delta,
            reference="Top up",
            visible=True,
            idempotency_key=key,
        )
        return (await self.handler.increment(request, call("Increment", account))).new_balance

    async def decrement(self, customer_id: str, delta: int, key: str = "") -> int:
        request = pb.DecrementRequest(
            customer_id=customer_id, delta=delta, reference="Correction", idempotency_key=key
        )
        return (await self.handler.decrement(request, call("Decrement"))).new_balance

    async def current(self, customer_id: str) -> int:
        request = pb.CurrentRequest(customer_id=customer_id)
        return (await self.handler.current(request, call("Current"))).current_balance

    async def transfer(self, from_id: str, to_id: str, amount: int) -> None:
        request = pb.TransferRequest(
            from_id=from_id, to_id=to_id, amount=amount, reference="Move", visible=True
        )
        await self.handler.transfer(request, call("Transfer"))

    async def admit(self, customer_id: str, price: int, n: int = 0) -> AdmissionDecision:
        return await self.counters.admit(paid_call(customer_id, price, n))

    async def hot(self, customer_id: str) -> int | None:
        return await self.counters.incr_existing(hot_key(customer_id), 0)

    async def ledger(self, customer_id: str) -> Ledger:
        async with self.sessions() as session:
            deltas = (
                await session.execute(
                    select(adjustments.c.delta)
                    .where(adjustments.c.customer_id == customer_id)
                    .order_by(adjustments.c.seq)
                )
            ).scalars()
            row = (
                await session.execute(
                    select(accounts.c.balance, accounts.c.recorded).where(
                        accounts.c.customer_id == customer_id
                    )
                )
            ).first()
            return Ledger(
                deltas=[int(d) for d in deltas],
                balance=None if row is None else int(row.balance),
                recorded=None if row is None else int(row.recorded),
            )

    def forget(self) -> None:
        """Forget the events and customers calls so far (a test's setup is not its
        subject)."""
        self.publisher.published.clear()
        self.customers.read.recorded.clear()


def make_world(sessions: SessionFactory, counters: CounterStore) -> World:
    customers = FakeCustomersClient()
    publisher = FakePublisher()
    clock = TickingClock(START)
    balances = Balances(sessions=sessions, counters=counters, publisher=publisher, clock=clock)
    handler = Balance(sessions=sessions, balances=balances, customers=customers)
    return World(handler, balances, customers, publisher, counters, sessions)
