"""Tables the customers service owns.

``customers_customers`` holds every customer, deleted ones included (a soft delete keeps
the record). ``customers_emails`` is the email index: one row per email held by a
non-deleted customer, the email its primary key. Writing the customer and its index row in
one transaction lets the database, not the code, guarantee that two concurrent Creates for
one email give one customer. Deleting a customer releases its row, so the email can sign up
again as a new customer with a new id.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["customers", "emails", "metadata"]

metadata = new_metadata()

customers = Table(
    "customers_customers",
    metadata,
    Column("id", String(36), primary_key=True),
    # normalised; unique among non-deleted customers through customers_emails
    Column("email", String(320), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("meta", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Index("ix_customers_customers_created_id", "created", "id"),
)

emails = Table(
    "customers_emails",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("customer_id", ForeignKey(customers.c.id), nullable=False, unique=True),
)
