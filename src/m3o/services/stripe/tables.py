"""Tables the stripe service owns.

- ``stripe_customers``: each customer's Stripe customer, unique both ways (a customer has
  one Stripe customer, a Stripe customer belongs to one customer).
- ``stripe_processed_events``: the Stripe events the webhook has handled, by Stripe's event
  id; a row is written in the transaction that publishes what the event caused, so an event
  Stripe delivers again (or twice at once) publishes nothing more.
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["customers", "metadata", "processed_events"]

metadata = new_metadata()

customers = Table(
    "stripe_customers",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("stripe_customer_id", String(255), nullable=False, unique=True),
    Column("created", UTCDateTime, nullable=False),
)

processed_events = Table(
    "stripe_processed_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(255), nullable=False),
    Column("processed", UTCDateTime, nullable=False),
)
