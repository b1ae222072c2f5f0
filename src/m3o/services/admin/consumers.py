"""What admin does on ``customers`` events (group ``admin-customers``).

- Deleted: the customer's data is deleted in every service (``deletion.py``), with the
  address the event carries. If a service fails the event fails, so the bus retries it;
  each retry asks only the services that have not succeeded. A run under way for the same
  customer (DeleteData's, whose customers call published this event) fails it too, to be
  retried once that run is done. Past the bus's last attempt
  the resume cron keeps going until every service has succeeded.
"""

from __future__ import annotations

from m3o.events.customers import TOPIC, Event, EventType
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.services.admin.deletion import Deletions

__all__ = ["CustomerDeletions"]

_log = get_logger(__name__)
_ENDPOINT = "admin.customerdeleted"


class CustomerDeletions:
    """Consumes ``customers`` in the group ``admin-customers``."""

    def __init__(self, *, deletions: Deletions) -> None:
        self._deletions = deletions

    def consumer(self) -> Consumer:
        return Consumer(TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(Event)
        if event.type != EventType.EventTypeDeleted:
            return
        if not event.customer.id:
            _log.warning("admin.event_skipped", event_id=delivery.id, reason="no customer")
            return
        outcome = await self._deletions.run(event.customer.id, event.customer.email)
        if outcome.busy:
            raise Unavailable(_ENDPOINT, "Deletion already under way")
        if outcome.failed:
            raise Unavailable(_ENDPOINT, f"Deleting data failed in: {', '.join(outcome.failed)}")
