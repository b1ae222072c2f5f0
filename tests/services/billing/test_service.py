"""The service definition: the handler behind a dispatcher with the configured tiers,
ListTiers public, the caller's token passed to stripe, and SubscriptionChanged going through
the outbox to the projects consumer, whose tier it sets."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events import customers
from m3o.events import stripe as stripe_events
from m3o.runtime.errors import Forbidden, Unauthorized
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.rpc import Client, StaticToken, TokenSource, Transport
from m3o.runtime.store import SessionFactory
from m3o.services.billing.handler import Billing
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.proto.client import SPEC, BillingClient
from m3o.services.billing.service import definition
from m3o.services.billing.tables import metadata
from m3o.services.projects.consumers import CustomerEvents as ProjectsCustomerEvents
from m3o.services.projects.erasure import Erasure
from m3o.services.projects.tables import accounts as projects_accounts
from m3o.services.stripe.proto import stripe_pb2 as stripe_pb
from m3o.services.stripe.proto.client import StripeClient
from m3o.services.stripe.proto.fakes import FakeStripeClient
from services.billing.support import ANN, SERVICE, StripeStandIn
from support.services import AnonymousRefused, TokenAccounts, dependencies, serve

C = TypeVar("C", bound=Client)

DOCUMENT = {
    "billing": {
        "tiers": {
            "free": {"name": "Free", "price": "$0"},
            "pro": {"name": "Pro", "stripe_price_id": "price_pro", "price": "$25"},
        }
    }
}


class StripeOnly:
    """The clients billing is given: the fake stripe client."""

    def __init__(self, stripe: FakeStripeClient) -> None:
        self.stripe = stripe

    def get(self, client_type: Callable[[Transport, TokenSource | None], C]) -> C:
        assert client_type is StripeClient
        return cast(C, self.stripe)


def client_of(implementation: object, token: str | None) -> BillingClient:
    local = serve(
        SPEC,
        implementation,
        authenticator=TokenAccounts({"ann-token": ANN, "stripe-token": SERVICE}),
        rules=AnonymousRefused(),
        public=frozenset({"ListTiers"}),
    )
    return BillingClient(local, None if token is None else StaticToken(token))


async def test_definition_serves_the_configured_tiers_and_passes_the_callers_token(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "billing"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    stripe = FakeStripeClient()
    stripe.list_cards.returns(stripe_pb.ListCardsResponse(cards=[stripe_pb.Card(id="pm_1")]))
    parts = await definition.build(
        dependencies("billing", engine, sessions, DOCUMENT, clients=StripeOnly(stripe))
    )
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert handler.public == frozenset({"ListTiers"})
    assert isinstance(handler.implementation, Billing)
    assert [c.topic for c in parts.consumers] == [customers.TOPIC, stripe_events.TOPIC]

    anonymous = client_of(handler.implementation, None)
    listed = await anonymous.list_tiers(pb.ListTiersRequest())
    assert [(t.id, t.name, t.price) for t in listed.tiers] == [
        ("free", "Free", "$0"),
        ("pro", "Pro", "$25"),
    ]
    with pytest.raises(Unauthorized):
        await anonymous.read_account(pb.ReadAccountRequest())

    ann = client_of(handler.implementation, "ann-token")
    assert (await ann.read_account(pb.ReadAccountRequest())).billing_account.id == "ann"
    assert [c.id for c in (await ann.list_cards(pb.ListCardsRequest())).cards] == ["pm_1"]
    assert stripe.list_cards.recorded[0].metadata == {"authorization": "Bearer ann-token"}
    with pytest.raises(Forbidden):
        await ann.subscription_ended(
            pb.SubscriptionEndedRequest(customer_id="ann", subscription_id="sub_1")
        )


async def test_a_tier_change_reaches_the_projects_consumer_through_the_outbox(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    bus = sql_event_bus(engine, poll_interval=0.05)
    stripe = FakeStripeClient()
    at_stripe = StripeStandIn(stripe)
    at_stripe.cards["ann"] = {"card_1"}
    parts = await definition.build(
        dependencies(
            "billing",
            engine,
            sessions,
            DOCUMENT,
            publisher=bus.publisher,
            clients=StripeOnly(stripe),
        )
    )
    projects = ProjectsCustomerEvents(
        sessions=sessions, erasure=Erasure(sessions=sessions, publisher=bus.publisher)
    )
    bus.subscribe(customers.TOPIC, "projects-customers", projects.handle)
    ann = client_of(parts.handlers[0].implementation, "ann-token")
    stripe_service = client_of(parts.handlers[0].implementation, "stripe-token")
    await bus.start()
    try:
        await ann.subscribe_tier(pb.SubscribeTierRequest(id="pro", card_id="card_1"))
        await bus.wait_idle(timeout=20)
        assert await projects_tier(sessions) == "pro"

        await stripe_service.subscription_ended(
            pb.SubscriptionEndedRequest(customer_id="ann", subscription_id="sub_1")
        )
        await bus.wait_idle(timeout=20)
        assert await projects_tier(sessions) == "free"
    finally:
        await bus.stop()
    assert await bus.dead_letters() == []
    read = await ann.read_account(pb.ReadAccountRequest())
    assert list(read.billing_account.subscriptions) == [pb.Subscription(id="free")]


async def projects_tier(sessions: SessionFactory) -> str | None:
    async with sessions() as session:
        return (
            await session.execute(
                select(projects_accounts.c.tier).where(projects_accounts.c.id == "ann")
            )
        ).scalar_one_or_none()
