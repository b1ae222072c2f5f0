"""Tables of the SQL counter store (``sqlite.py``), the ``local`` profile's Redis.

``runtime_counters`` holds one row per key. A key is used either as a counter (``count``)
or as a string value (``text``); the other column keeps its default. ``expires_at`` is an
absolute UTC time (NULL: never expires); a row past it reads as missing, is replaced by the
next write and is removed by ``SqlCounterStore.purge_expired``. SQLite keeps no zone, so
the store writes UTC only and reads naive values back as UTC.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, String, Table, Text

from m3o.runtime.store import new_metadata

__all__ = ["KEY_LENGTH", "counters", "metadata"]

metadata = new_metadata()

KEY_LENGTH = 1024
"""Longest key, in characters (an email is at most 254)."""

counters = Table(
    "runtime_counters",
    metadata,
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
    Column("text", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True, index=True),
)
