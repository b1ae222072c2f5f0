"""What billing does on ``customers`` events (group ``billing-customers``) and on ``stripe``
events (group ``billing-stripe``).

- AddPaymentMethod: the customer's billing account is made if missing;
- Deleted: the customer leaves every account it belongs to (see ``erasure.py``); a
  failure leaves everything as it was and the bus retries.

On ``stripe``:

- SubscriptionDeleted (Stripe ended a subscription, e.g. unpaid or cancelled in its
  dashboard): the account, if it still pays by that subscription, goes to ``free`` and
  customers/SubscriptionChanged is published (as the SubscriptionEnded RPC does).

All are idempotent, so redeliveries are harmless.
"""

from __future__ import annotations

from m3o.events import stripe as stripe_events
from m3o.events.customers import TOPIC, Event, EventType
from m3o.runtime.auth import CallContext
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.billing import records
from m3o.services.billing.erasure import Erasure
from m3o.services.billing.subscriptions import Subscriptions

__all__ = ["CustomerEvents", "StripeEvents"]

_log = get_logger(__name__)
_CONTEXT = CallContext(service="billing", method="CustomerDeleted")
"""Names the consumer in the errors of the calls it makes."""


class CustomerEvents:
    """Consumes ``customers`` in the group ``billing-customers``."""

    def __init__(
        self, *, sessions: SessionFactory, subscriptions: Subscriptions, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._subscriptions = subscriptions
        self._clock = clock
        self._erasure = Erasure(sessions=sessions, subscriptions=subscriptions)

    def consumer(self) -> Consumer:
        return Consumer(TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(Event)
        if event.type not in (EventType.EventTypeAddPaymentMethod, EventType.EventTypeDeleted):
            return
        customer_id = event.customer.id
        if not customer_id:
            _log.warning("billing.event_skipped", event_id=delivery.id, reason="no customer")
            return
        if event.type == EventType.EventTypeAddPaymentMethod:
            async with transaction(self._sessions) as session:
                await records.ensure(session, customer_id, self._clock())
            return
        await self._erasure.remove(_CONTEXT, customer_id)


class StripeEvents:
    """Consumes ``stripe`` in the group ``billing-stripe``: subscriptions Stripe ended."""

    def __init__(self, *, subscriptions: Subscriptions) -> None:
        self._subscriptions = subscriptions

    def consumer(self) -> Consumer:
        return Consumer(stripe_events.TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(stripe_events.Event)
        if event.type != stripe_events.EventType.EventTypeSubscriptionDeleted:
            return
        ended = event.subscription_deleted
        if not ended.customer_id or not ended.subscription_id:
            _log.warning("billing.event_skipped", event_id=delivery.id, reason="no subscription")
            return
        await self._subscriptions.ended(ended.customer_id, ended.subscription_id, "stripe")
