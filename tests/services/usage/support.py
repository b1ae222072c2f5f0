"""Helpers of the usage tests: callers, events, and the service's parts assembled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from m3o.events.customers import Event as CustomerEvent
from m3o.events.customers import EventType as CustomerEventType
from m3o.events.customers import events_pb2 as customer_events_pb
from m3o.events.requests import Event as RequestEvent
from m3o.events.requests import EventType as RequestEventType
from m3o.events.requests import Request
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.config.sections import UsageConfig
from m3o.runtime.counters import CounterStore
from m3o.runtime.events import Delivery
from m3o.runtime.store import SessionFactory
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.projects.proto.fakes import FakeProjectsClient
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from m3o.services.usage.analytics import Analytics
from m3o.services.usage.consumers import AccountEvents
from m3o.services.usage.erasure import Erasure
from m3o.services.usage.handler import Usage
from m3o.services.usage.maintenance import Maintenance
from m3o.services.usage.ranks import Ranks
from m3o.services.usage.recording import RequestRecorder
from m3o.services.usage.tiers import Tiers
from support.services import MovableClock

START = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
"""The tests' now: the middle of a month."""

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="v1", type="service", scopes=("service",))


def customer(customer_id: str) -> Account:
    return Account(id=customer_id, type="customer", scopes=("customer",))


def call(method: str, account: Account | None) -> CallContext:
    return CallContext(service="usage", method=method, account=account)


def request_delivery(
    event_id: str,
    project: str = "proj-1",
    api: str = "helloworld",
    endpoint: str = "Helloworld.Call",
    price: str = "free",
    at: datetime = START,
) -> Delivery:
    event = RequestEvent(
        type=RequestEventType.EventTypeRequest,
        request=Request(
            user_id=project,
            project_id=project,
            api_name=api,
            endpoint_name=endpoint,
            price=price,
            url=f"/v1/{api}/{endpoint.rpartition('.')[2].lower()}",
            api_key_id="key-1",
            namespace="micro",
            status_code=200,
        ),
    )
    return Delivery(
        id=event_id,
        topic="requests",
        type_name="EventTypeRequest",
        time=at,
        payload=event.SerializeToString(),
    )


def customer_delivery(
    event_type: CustomerEventType.ValueType,
    customer_id: str = "proj-1",
    tier: str = "",
    at: datetime = START,
    event_id: str = "customer-event-1",
) -> Delivery:
    event = CustomerEvent(
        type=event_type, customer=customer_events_pb.Customer(id=customer_id, status="active")
    )
    if event_type == CustomerEventType.EventTypeSubscriptionChanged:
        event.subscription_changed.tier = tier
    return Delivery(
        id=event_id,
        topic="customers",
        type_name=CustomerEventType.Name(event_type),
        time=at,
        payload=event.SerializeToString(),
    )


@dataclass
class World:
    """The usage service's parts over one database and counter store, with fakes of
    customers and publicapi."""

    handler: Usage
    recorder: RequestRecorder
    account_events: AccountEvents
    tiers: Tiers
    ranks: Ranks
    maintenance: Maintenance
    customers: FakeCustomersClient
    publicapi: FakePublicapiClient
    projects: FakeProjectsClient
    counters: CounterStore
    sessions: SessionFactory
    clock: MovableClock

    async def record(self, *deliveries: Delivery) -> None:
        """Count request events one by one, as a consumer handling one at a time would."""
        for delivery in deliveries:
            assert await self.recorder.handle([delivery]) == {}


def make_world(
    sessions: SessionFactory,
    counters: CounterStore,
    *,
    clock: MovableClock | None = None,
    config: UsageConfig | None = None,
) -> World:
    clock = clock or MovableClock(START)
    config = config or UsageConfig()
    customers = FakeCustomersClient()
    publicapi = FakePublicapiClient()
    tiers = Tiers(sessions=sessions, counters=counters)
    recorder = RequestRecorder(sessions=sessions, counters=counters, clock=clock)
    erasure = Erasure(sessions=sessions, counters=counters, tiers=tiers, clock=clock)
    maintenance = Maintenance(
        sessions=sessions,
        counters=counters,
        recorder=recorder,
        tiers=tiers,
        history_retention=config.history_retention,
        clock=clock,
    )
    ranks = Ranks(sessions=sessions, customers=customers, publicapi=publicapi, clock=clock)
    projects = FakeProjectsClient()
    handler = Usage(
        sessions=sessions,
        counters=counters,
        config=config,
        ranks=ranks,
        analytics=Analytics(sessions=sessions, clock=clock),
        maintenance=maintenance,
        erasure=erasure,
        projects=projects,
        clock=clock,
    )
    account_events = AccountEvents(tiers=tiers, projects=projects, erasure=erasure)
    return World(
        handler=handler,
        recorder=recorder,
        account_events=account_events,
        tiers=tiers,
        ranks=ranks,
        maintenance=maintenance,
        customers=customers,
        publicapi=publicapi,
        projects=projects,
        counters=counters,
        sessions=sessions,
        clock=clock,
    )
