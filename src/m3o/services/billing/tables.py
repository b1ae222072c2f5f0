"""Tables the billing service owns.

- ``billing_accounts``: one row per billing account. Its id is the id of the customer it
  was made for, so a customer can never get two (a concurrent second insert finds the
  first). It holds the tier paid for, the Stripe subscription paying for it, and the
  subscription change under way (its tier, id and start, written before Stripe is asked,
  so a retried change reuses the same Stripe idempotency key and two changes never overlap).
- ``billing_members``: who belongs to which account, and whether as admin.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["accounts", "members", "metadata"]

metadata = new_metadata()

accounts = Table(
    "billing_accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tier", String(64), nullable=False),
    # the Stripe subscription paying for the tier; empty for a free tier
    Column("subscription_id", String(255), nullable=False),
    # the change under way: its tier and id (the Stripe idempotency key's last part)
    Column("pending_tier", String(64), nullable=False),
    Column("pending_change", String(36), nullable=False),
    # when the change under way began; None: none is
    Column("pending_since", UTCDateTime, nullable=True),
    Column("created", UTCDateTime, nullable=False),
)

members = Table(
    "billing_members",
    metadata,
    Column("account_id", ForeignKey(accounts.c.id, ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(36), primary_key=True),
    Column("admin", Boolean, nullable=False),
    Index("ix_billing_members_customer_id", "customer_id"),
)
