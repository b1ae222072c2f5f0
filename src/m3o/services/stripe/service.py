"""Wiring of the stripe service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.alerts.proto.client import AlertsClient
from m3o.services.stripe import tables
from m3o.services.stripe.connection import StripeConnection
from m3o.services.stripe.consumers import CustomerDeletions
from m3o.services.stripe.customer_map import CustomerMap
from m3o.services.stripe.handler import Stripe
from m3o.services.stripe.payment_alerts import PaymentAlerts
from m3o.services.stripe.proto.client import SPEC, StripeHandler
from m3o.services.stripe.settings import settings_from
from m3o.services.stripe.webhook import Webhooks

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    settings = settings_from(deps.config)
    connection = StripeConnection(settings)
    customers = CustomerMap(sessions=deps.sessions, stripe=connection)
    webhooks = Webhooks(
        settings=settings,
        sessions=deps.sessions,
        publisher=deps.publisher,
        stripe=connection,
        customers=customers,
        alerts=PaymentAlerts(deps.clients.get(AlertsClient)),
    )
    handler: StripeHandler = Stripe(
        settings=settings, stripe=connection, customers=customers, webhooks=webhooks
    )
    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        consumers=[CustomerDeletions(customers=customers).consumer()],
        on_stop=[connection.close],
    )


definition = ServiceDefinition(
    name="stripe",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
