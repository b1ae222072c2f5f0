"""Helpers of the stripe tests: accounts, call contexts, the world under test, webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m3o.events import customers as customers_events
from m3o.events import stripe as stripe_events
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.proto.fakes import FakeAlertsClient
from m3o.services.stripe.connection import StripeConnection
from m3o.services.stripe.customer_map import CustomerMap
from m3o.services.stripe.handler import Stripe
from m3o.services.stripe.payment_alerts import PaymentAlerts
from m3o.services.stripe.proto import stripe_pb2 as pb
from m3o.services.stripe.settings import StripeSettings
from m3o.services.stripe.webhook import Webhooks
from support.stripe_fake import StripeFake, event_payload, sign_webhook

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
BILLING = Account(id="billing", type="service", scopes=("service",))
GATEWAY = Account(id="gateway", type="service", scopes=("service",))
ANN = "ann-0001"
BOB = "bob-0002"
SECRET = "whsec_live"
TEST_SECRET = "whsec_test"
MIN_AMOUNT = 1000


def customer(customer_id: str) -> Account:
    return Account(id=customer_id, type="customer", scopes=("customer",))


def call(method: str, account: Account | None) -> CallContext:
    return CallContext(service="stripe", method=method, account=account)


@dataclass
class World:
    handler: Stripe
    customers: CustomerMap
    connection: StripeConnection
    publisher: FakePublisher
    fake: StripeFake
    sessions: SessionFactory
    alerts: FakeAlertsClient

    def charges(self) -> list[Any]:
        return [
            e.charge_succeeded
            for e in self.publisher.events(stripe_events.TOPIC)
            if e.type == stripe_events.EventType.EventTypeChargeSucceeded
        ]

    def stripe_events(self) -> list[Any]:
        return self.publisher.events(stripe_events.TOPIC)

    def customer_events(self) -> list[Any]:
        return self.publisher.events(customers_events.TOPIC)

    async def deliver(self, event: dict[str, Any], secret: str = SECRET) -> None:
        """Deliver ``event`` to the webhook as Stripe would, through the gateway's account."""
        payload = event_payload(event)
        request = pb.WebhookRequest(payload=payload, signature=sign_webhook(payload, secret))
        await self.handler.webhook(request, call("Webhook", GATEWAY))

    async def card_of(self, customer_id: str, **card: Any) -> str:
        """A card attached to ``customer_id``'s Stripe customer (made if needed)."""
        stripe_customer = await self.customers.ensure("test", customer_id)
        card_id = self.fake.add_card(**card)
        self.fake.client().v1.payment_methods.attach(card_id, {"customer": stripe_customer})
        return card_id


def make_world(
    sessions: SessionFactory,
    fake: StripeFake,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
) -> World:
    """The service against ``fake`` (or, with ``api_key`` / ``api_base``, that key and
    address instead of the fake's)."""
    settings = StripeSettings(
        api_key=fake.api_key if api_key is None else api_key,
        signing_secrets=(SECRET, TEST_SECRET),
        success_url="https://m3o.test/paid",
        cancel_url="https://m3o.test/cancelled",
        min_amount=MIN_AMOUNT,
        api_base=fake.base_url if api_base is None else api_base,
    )
    connection = StripeConnection(settings)
    customers = CustomerMap(sessions=sessions, stripe=connection)
    publisher = FakePublisher()
    alerts = FakeAlertsClient()
    webhooks = Webhooks(
        settings=settings,
        sessions=sessions,
        publisher=publisher,
        stripe=connection,
        customers=customers,
        alerts=PaymentAlerts(alerts),
    )
    handler = Stripe(settings=settings, stripe=connection, customers=customers, webhooks=webhooks)
    return World(handler, customers, connection, publisher, fake, sessions, alerts)
