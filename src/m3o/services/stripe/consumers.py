"""Events the stripe service consumes: deleted customers (``customers``), whose Stripe
customer and mapping go. Delivery is at least once; deleting again does nothing more (an
already deleted Stripe customer counts as done), and a Stripe failure is retried."""

from __future__ import annotations

from m3o.events import customers as customers_events
from m3o.runtime.events import Delivery
from m3o.runtime.service import Consumer
from m3o.services.stripe.customer_map import CustomerMap

__all__ = ["CustomerDeletions"]

_ENDPOINT = "stripe.customerdeleted"


class CustomerDeletions:
    """Consumes ``customers`` in the group ``stripe-customers``."""

    def __init__(self, *, customers: CustomerMap) -> None:
        self._customers = customers

    def consumer(self) -> Consumer:
        return Consumer(customers_events.TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(customers_events.Event)
        if event.type != customers_events.EventType.EventTypeDeleted or not event.customer.id:
            return
        await self._customers.delete(_ENDPOINT, event.customer.id)
