"""The runtime's event tables: the local event log, the platform outbox, dead letters.

``local`` profile (``sqlite.py``):

- ``runtime_event_log`` holds every published event (kept for ``retention``, then pruned);
- ``runtime_event_groups`` lists the consumer groups of each topic;
- ``runtime_event_deliveries`` is each group's ack state: one row per event a group has not
  finished yet, written in the publishing transaction for every group of the topic and
  deleted on ack. It carries the attempt count, when the event may be tried next, and which
  consumer holds it until when (a lease, renewed while the handler runs). Events handed
  over to this process's consumers on SQLite (``handed`` in the log) get no row for the
  groups they were handed to: the group's ``handed_through`` says which of them are done
  (see ``sqlite.py``, "Handed over, not claimed").

``platform`` profile (``_relay.py``): ``runtime_event_outbox`` holds events committed but
not yet relayed to Redis Streams; the relay deletes a row once the stream has it.

Both: ``runtime_event_dead_letters`` keeps the events a group gave up on, for operators to
list and replay.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
)

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = [
    "UTCDateTime",
    "dead_letters",
    "deliveries",
    "event_log",
    "groups",
    "metadata",
    "outbox",
]

metadata = new_metadata()

ID = 32
NAME = 200
TRACEPARENT = 64


event_log = Table(
    "runtime_event_log",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("topic", String(NAME), nullable=False),
    # the name of the event's type enum value, e.g. "EventTypeSignup"
    Column("type_name", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("payload", LargeBinary, nullable=False),
    # the W3C traceparent of the span that published it; null: none (tracing off)
    Column("traceparent", String(TRACEPARENT), nullable=True),
    # SQLite: handed over to consumers of this process, without delivery rows for their
    # groups (false everywhere on PostgreSQL)
    Column("handed", Boolean, nullable=False, server_default=false()),
)

groups = Table(
    "runtime_event_groups",
    metadata,
    Column("topic", String(NAME), primary_key=True),
    Column("group_name", String(NAME), primary_key=True),
    Column("created", UTCDateTime, nullable=False),
    # SQLite: the log's rowid up to which every event handed over to this group is settled
    # (handled, or given a delivery row); null on PostgreSQL, which hands nothing over
    Column("handed_through", BigInteger, nullable=True),
)

deliveries = Table(
    "runtime_event_deliveries",
    metadata,
    Column("topic", String(NAME), primary_key=True),
    Column("group_name", String(NAME), primary_key=True),
    # no index of its own: the primary key serves every lookup but the hourly prune's
    Column("event_id", String(ID), primary_key=True),
    # handling attempts begun so far (a crashed attempt counts)
    Column("attempts", Integer, nullable=False),
    # not to be tried before this time (the retry backoff)
    Column("available_at", UTCDateTime, nullable=False),
    # the consumer holding the event, until lease_until; free when null or past
    Column("owner", String(NAME), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_runtime_event_deliveries_due", "topic", "group_name", "available_at"),
)

outbox = Table(
    "runtime_event_outbox",
    metadata,
    # the row's own id; it is also the relay's deduplication key
    Column("id", String(ID), primary_key=True),
    Column("event_id", String(ID), nullable=False),
    Column("topic", String(NAME), nullable=False),
    Column("type_name", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    # only this group gets the event (a replayed dead letter); null: every group
    Column("target_group", String(NAME), nullable=True),
    # the W3C traceparent of the span that published it; null: none (tracing off)
    Column("traceparent", String(TRACEPARENT), nullable=True),
    Column("created", UTCDateTime, nullable=False, index=True),
)

dead_letters = Table(
    "runtime_event_dead_letters",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("event_id", String(ID), nullable=False, index=True),
    Column("topic", String(NAME), nullable=False),
    Column("group_name", String(NAME), nullable=False),
    Column("type_name", String(NAME), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", UTCDateTime, nullable=False, index=True),
    Column("replayed_at", UTCDateTime, nullable=True),
)
