"""Tables the alerts service owns.

- ``alerts_events``: every event reported and not block-listed, posted or not (a
  ``success``, or an alert collapsed into an earlier message, is stored too). Read back
  newest first by ``List``.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, String, Table, Text

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["events", "metadata"]

metadata = new_metadata()

events = Table(
    "alerts_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("category", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("label", Text, nullable=False),
    # the event's uint64 value; values above 2^63 - 1 are refused at the edge
    Column("value", BigInteger, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_alerts_events_created", "created"),
)
