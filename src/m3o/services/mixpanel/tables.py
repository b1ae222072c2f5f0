"""Tables the mixpanel service owns.

- ``mixpanel_ignored_customers``: customers whose email is on ``mixpanel.ignore_list``, as
  learned from their ``customers`` events. Request events carry no email, only the
  project; this table lets a whole batch of them be checked with one query instead of
  asking customers about each.
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["ignored_customers", "metadata"]

metadata = new_metadata()

ignored_customers = Table(
    "mixpanel_ignored_customers",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("recorded", UTCDateTime, nullable=False),
)
