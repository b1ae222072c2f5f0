"""Helpers of the billing tests: accounts, call contexts, a stand-in for Stripe behind the
fake stripe client, and the world under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import Message

from m3o.events.customers import TOPIC, Event
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.config.sections import Tier
from m3o.runtime.errors import Forbidden, M3OError, NotFound
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.billing.handler import Billing
from m3o.services.billing.subscriptions import Subscriptions
from m3o.services.stripe.proto import stripe_pb2 as stripe_pb
from m3o.services.stripe.proto.fakes import FakeStripeClient
from support.services import TickingClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="stripe", type="service", scopes=("service",))
START = datetime(2024, 1, 1, tzinfo=UTC)
TIERS = {
    "free": Tier(name="Free", price="$0", description="Free tier"),
    "pro": Tier(name="Pro", stripe_price_id="price_pro", price="$25/month", description="Pro"),
    "business": Tier(
        name="Business", stripe_price_id="price_business", price="$250/month", description="Biz"
    ),
}


def customer(customer_id: str) -> Account:
    return Account(
        id=customer_id, type="customer", scopes=("customer",), name=f"{customer_id}@example.com"
    )


ANN = customer("ann")
BOB = customer("bob")
ROLES: dict[str, Account | None] = {
    "customer": ANN,
    "other customer": BOB,
    "admin": ADMIN,
    "service": SERVICE,
    "anonymous": None,
}


def call(method: str, account: Account | None = ANN) -> CallContext:
    metadata = {} if account is None else {"authorization": f"Bearer {account.id}-token"}
    return CallContext(service="billing", method=method, account=account, metadata=metadata)


@dataclass
class StripeStandIn:
    """Stripe's subscriptions as the fake stripe client answers them: cards by customer,
    subscriptions made (one per idempotency key) and cancelled, and every call in order."""

    fake: FakeStripeClient
    cards: dict[str, set[str]] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)  # subscription id -> customer
    by_key: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    status: str = "active"
    fail_subscribe: M3OError | None = None
    fail_unsubscribe: M3OError | None = None

    def __post_init__(self) -> None:
        self.fake.subscribe.calls_through(self._subscribe)
        self.fake.unsubscribe.calls_through(self._unsubscribe)

    async def _subscribe(self, request: stripe_pb.SubscribeRequest) -> stripe_pb.SubscribeResponse:
        self.log.append(f"subscribe {request.price_id}")
        if self.fail_subscribe is not None:
            raise self.fail_subscribe
        if request.card_id not in self.cards.get(request.customer_id, set()):
            raise Forbidden("stripe.subscribe", "Card does not belong to user")
        made = self.by_key.get(request.idempotency_key)
        if made is None:
            made = f"sub_{len(self.by_key) + 1}"
            self.by_key[request.idempotency_key] = made
            self.active[made] = request.customer_id
        return stripe_pb.SubscribeResponse(subscription_id=made, status=self.status)

    async def _unsubscribe(
        self, request: stripe_pb.UnsubscribeRequest
    ) -> stripe_pb.UnsubscribeResponse:
        self.log.append(f"unsubscribe {request.subscription_id}")
        if self.fail_unsubscribe is not None:
            raise self.fail_unsubscribe
        if self.active.get(request.subscription_id) != request.customer_id:
            raise NotFound("stripe.unsubscribe", "Subscription not found")
        del self.active[request.subscription_id]
        return stripe_pb.UnsubscribeResponse()


class FlakyPublisher(FakePublisher):
    """A recording publisher whose database can go away (``down``) and come back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, topic: str, event: Message, *, session: object | None = None) -> str:
        if self.down:
            raise RuntimeError("database gone")
        return await super().publish(topic, event, session=session)


@dataclass
class World:
    handler: Billing
    subscriptions: Subscriptions
    stripe: FakeStripeClient
    at_stripe: StripeStandIn
    publisher: FlakyPublisher
    sessions: SessionFactory
    clock: TickingClock

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        return [event for event in found if isinstance(event, Event)]

    def tiers_published(self) -> list[tuple[str, str]]:
        return [(e.customer.id, e.subscription_changed.tier) for e in self.events()]


def build_world(sessions: SessionFactory) -> World:
    stripe = FakeStripeClient()
    publisher = FlakyPublisher()
    clock = TickingClock(START)
    subscriptions = Subscriptions(
        sessions=sessions, publisher=publisher, stripe=stripe, tiers=TIERS, clock=clock
    )
    handler = Billing(
        sessions=sessions, stripe=stripe, subscriptions=subscriptions, tiers=TIERS, clock=clock
    )
    return World(handler, subscriptions, stripe, StripeStandIn(stripe), publisher, sessions, clock)
