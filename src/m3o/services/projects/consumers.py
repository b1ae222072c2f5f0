"""What projects does on ``customers`` events (group ``projects-customers``).

- Deleted: the customer's projects are deleted (ProjectDeleted each) and its account
  closed, see :class:`~m3o.services.projects.erasure.Erasure`;
- SubscriptionChanged: the billing account's tier (which sets its project limit) becomes
  the event's, as of the event's time, so an older event arriving late changes nothing.

Both are idempotent, so redeliveries are harmless; a failure is retried by the bus.
"""

from __future__ import annotations

from m3o.events.customers import TOPIC, Event, EventType
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.projects import records
from m3o.services.projects.erasure import Erasure

__all__ = ["CustomerEvents"]

_log = get_logger(__name__)


class CustomerEvents:
    """Consumes ``customers`` in the group ``projects-customers``."""

    def __init__(self, *, sessions: SessionFactory, erasure: Erasure) -> None:
        self._sessions = sessions
        self._erasure = erasure

    def consumer(self) -> Consumer:
        return Consumer(TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(Event)
        if event.type not in (EventType.EventTypeDeleted, EventType.EventTypeSubscriptionChanged):
            return
        customer_id = event.customer.id
        if not customer_id:
            _log.warning(
                "projects.customer_event_skipped", event_id=delivery.id, reason="no customer"
            )
            return
        if event.type == EventType.EventTypeDeleted:
            await self._erasure.erase(customer_id)
            return
        tier = event.subscription_changed.tier or records.DEFAULT_TIER
        async with transaction(self._sessions) as session:
            await records.set_tier(session, customer_id, tier, delivery.time)
        _log.info("projects.tier_changed", customer_id=customer_id, tier=tier)
