"""Each customer's Stripe customer: found, made once, deleted.

A Stripe customer is made with the idempotency key ``customer:<id>``, so concurrent first
requests of one customer (here or in another process) get the same Stripe customer back
from Stripe, and the mapping, unique both ways, keeps the first one recorded.
"""

from __future__ import annotations

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.stripe import records
from m3o.services.stripe.connection import StripeConnection

__all__ = ["CUSTOMER_METADATA", "CustomerMap"]

_log = get_logger(__name__)

CUSTOMER_METADATA = "customer_id"
"""Metadata key naming the platform's customer on its Stripe customer."""


class CustomerMap:
    def __init__(
        self, *, sessions: SessionFactory, stripe: StripeConnection, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._stripe = stripe
        self._clock = clock

    async def find(self, customer_id: str) -> str | None:
        """The Stripe customer of ``customer_id``, None before its first payment."""
        async with self._sessions() as session:
            return await records.stripe_customer_of(session, customer_id)

    async def owner(self, stripe_customer_id: str) -> str | None:
        """The customer of a Stripe customer, if it is mapped."""
        async with self._sessions() as session:
            return await records.customer_of(session, stripe_customer_id)

    async def ensure(self, endpoint: str, customer_id: str) -> str:
        """The Stripe customer of ``customer_id``, made and mapped if it has none."""
        found = await self.find(customer_id)
        if found is not None:
            return found
        made = await self._stripe.call(
            endpoint,
            lambda client: client.v1.customers.create_async(
                {"metadata": {CUSTOMER_METADATA: customer_id}},
                {"idempotency_key": f"customer:{customer_id}"},
            ),
        )
        async with transaction(self._sessions) as session:
            await records.map_customer(session, customer_id, made.id, self._clock())
            mapped = await records.stripe_customer_of(session, customer_id)
        if mapped is None:
            # Stripe's customer is someone else's already: not something a caller can fix.
            _log.error("stripe.customer_mapped_elsewhere", customer_id=customer_id, made=made.id)
            raise NotFound(endpoint, "Customer not found")
        return mapped

    async def adopt(self, customer_id: str, stripe_customer_id: str) -> None:
        """Map a Stripe customer Stripe told us about, unless either side is mapped."""
        async with transaction(self._sessions) as session:
            await records.map_customer(session, customer_id, stripe_customer_id, self._clock())

    async def delete(self, endpoint: str, customer_id: str) -> None:
        """Delete the Stripe customer and the mapping; an already deleted one is done."""
        stripe_customer_id = await self.find(customer_id)
        if stripe_customer_id is None:
            return
        try:
            await self._stripe.call(
                endpoint,
                lambda client: client.v1.customers.delete_async(stripe_customer_id),
            )
        except NotFound:
            _log.info("stripe.customer_already_deleted", customer_id=customer_id)
        async with transaction(self._sessions) as session:
            await records.delete_mapping(session, customer_id)
        _log.info("stripe.customer_deleted", customer_id=customer_id)
