"""Tables the usage service owns.

- ``usage_history``: the daily history, the truth the live daily counters are a cache of:
  one row per customer (project id, or ``total`` for everyone), day (UTC) and path
  (``<api>``, ``<api>$<Endpoint>``, or ``$totalfree`` for the calls charged ``free``) with
  the number of metered calls.
- ``usage_recorded_events``: the ids of the request events already counted, written in the
  same transaction as their history, so a redelivered event is counted once.
- ``usage_tiers``: each customer's subscription tier, with the time of the event that set
  it (an older event arriving late changes nothing). Mirrored into the counter store.
- ``usage_ranks``: the latest ranking, as the encoded ``ListAPIRanksResponse``.
- ``usage_events``: custom analytics events by table.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["events", "history", "metadata", "ranks", "recorded_events", "tiers"]

metadata = new_metadata()

history = Table(
    "usage_history",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Index("ix_usage_history_day", "day"),
)

recorded_events = Table(
    "usage_recorded_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("recorded", UTCDateTime, nullable=False, index=True),
)

tiers = Table(
    "usage_tiers",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("tier", String(64), nullable=False),
    # time of the event that set the tier
    Column("changed", UTCDateTime, nullable=False),
)

ranks = Table(
    "usage_ranks",
    metadata,
    # one row, "current"
    Column("id", String(16), primary_key=True),
    Column("computed", UTCDateTime, nullable=False),
    # an encoded usage.ListAPIRanksResponse
    Column("ranking", LargeBinary, nullable=False),
)

events = Table(
    "usage_events",
    metadata,
    # insertion order, ties of created broken by it
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("table_name", String(64), nullable=False),
    Column("id", String(255), nullable=False),
    Column("record", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("table_name", "id"),
    Index("ix_usage_events_table_name_created", "table_name", "created"),
)
