"""Tables the admin service owns: the progress of each customer's deletion.

- ``admin_deletions``: one row per customer whose data is being (or was) deleted: the
  address it had (services that keep rows by address need it, and the customer record that
  knew it may be gone by a retry), when the deletion was asked for and when every service
  had succeeded (None: some have not yet), and until when a run under way holds it.
- ``admin_deletion_steps``: one row per service that has deleted the customer's data, so
  a retry asks only the others.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["deletions", "metadata", "steps"]

metadata = new_metadata()

deletions = Table(
    "admin_deletions",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    # the customer's normalised address; empty while not known
    Column("email", String(320), nullable=False),
    Column("requested", UTCDateTime, nullable=False),
    # when the last service succeeded; None while some have not
    Column("completed", UTCDateTime, nullable=True),
    # a run under way holds the deletion until then, so two never ask the same services
    Column("claimed_until", UTCDateTime, nullable=True),
    Index("ix_admin_deletions_completed", "completed"),
)

steps = Table(
    "admin_deletion_steps",
    metadata,
    Column(
        "customer_id",
        ForeignKey(deletions.c.customer_id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("service", String(64), primary_key=True),
    Column("deleted", UTCDateTime, nullable=False),
)
