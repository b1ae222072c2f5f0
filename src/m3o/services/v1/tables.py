"""Tables the v1 service owns.

``v1_keys`` holds one row per API key: never the key, only its keyed hash (unique, the
gateway's lookup; for a key imported from M3O and not rolled since, ``legacy``, the plain
SHA-256 M3O stored), with the project that owns it, the customer who pays for that project
(``billing_account``, whose ban or deletion reaches the key), its status and when it was
last used. ``last_seen`` is written on its own (from request events), never together with
the rest of the row, so an update of it can never undo a block.

``v1_removed_keys`` remembers the ids of deleted keys, so that importing M3O's keys again
never brings back one that was revoked here.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, String, Table, false

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["keys", "metadata", "removed_keys"]

metadata = new_metadata()

keys = Table(
    "v1_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    # the project the key belongs to
    Column("owner", String(64), nullable=False),
    # the customer who pays for the project
    Column("billing_account", String(64), nullable=False, index=True),
    # the account that generated the key
    Column("created_by", String(64), nullable=False),
    Column("description", String(500), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_message", String(500), nullable=False),
    Column("last_seen", UTCDateTime, nullable=True),
    # when the key stops working; NULL: never
    Column("expires", UTCDateTime, nullable=True),
    # imported from M3O: ``hash`` is the plain SHA-256 of its key (until it is rolled)
    Column("legacy", Boolean, nullable=False, server_default=false()),
    Index("ix_v1_keys_owner_created", "owner", "created"),
)

# The id of every key deleted (revoked, or its customer or project deleted), so that
# importing M3O's keys again never brings a revoked key back.
removed_keys = Table(
    "v1_removed_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("removed", UTCDateTime, nullable=False),
)
