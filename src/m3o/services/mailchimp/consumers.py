"""Events the mailchimp service consumes (``customers``): a signup adds the customer to the
audience (every signup method; the event carries the email), a deletion deletes them.

Delivery is at least once and both calls are idempotent, so a repeat changes nothing. A
transient Mailchimp failure raises, so the bus tries again later; a refusal (4xx) would
be refused again, so it is logged and the event acknowledged. An event without a usable
email is skipped.
"""

from __future__ import annotations

from m3o.events import customers as customers_events
from m3o.runtime.email_address import is_valid_email, mask_email, normalise_email
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import OutboundError
from m3o.runtime.service import Consumer
from m3o.services.mailchimp.handler import Membership

__all__ = ["CustomerSync"]

_log = get_logger(__name__)
_Type = customers_events.EventType


class CustomerSync:
    """Consumes ``customers`` in the group ``mailchimp-customers``."""

    def __init__(self, *, membership: Membership) -> None:
        self._membership = membership

    def consumer(self) -> Consumer:
        return Consumer(customers_events.TOPIC, self.handle)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(customers_events.Event)
        if event.type not in (_Type.EventTypeSignup, _Type.EventTypeDeleted):
            return
        email = normalise_email(event.customer.email)
        if not is_valid_email(email):
            _log.warning("mailchimp.no_email", event_id=delivery.id, customer=event.customer.id)
            return
        try:
            if event.type == _Type.EventTypeSignup:
                await self._membership.add(email)
            else:
                await self._membership.delete(email)
        except OutboundError as exc:
            if exc.transient:
                raise
            _log.error(
                "mailchimp.refused", event_id=delivery.id, email=mask_email(email), error=str(exc)
            )
