"""Wiring of the billing service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.billing import tables
from m3o.services.billing.consumers import CustomerEvents, StripeEvents
from m3o.services.billing.handler import Billing
from m3o.services.billing.proto.client import SPEC
from m3o.services.billing.subscriptions import Subscriptions
from m3o.services.stripe.proto.client import StripeClient

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    stripe = deps.clients.get(StripeClient)
    tiers = deps.config.billing.tiers
    subscriptions = Subscriptions(
        sessions=deps.sessions, publisher=deps.publisher, stripe=stripe, tiers=tiers
    )
    handler = Billing(
        sessions=deps.sessions, stripe=stripe, subscriptions=subscriptions, tiers=tiers
    )
    customer_events = CustomerEvents(sessions=deps.sessions, subscriptions=subscriptions)
    return ServiceParts(
        handlers=[Handler(SPEC, handler, public=frozenset({"ListTiers"}))],
        consumers=[
            customer_events.consumer(),
            StripeEvents(subscriptions=subscriptions).consumer(),
        ],
    )


definition = ServiceDefinition(
    name="billing",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
