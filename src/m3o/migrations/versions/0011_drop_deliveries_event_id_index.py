"""The event log's deliveries without their index on the event id alone

Every delivery row is written in a call's commit and deleted when its group acknowledges
it, and the index was a fourth b-tree to change each time. Only the hourly prune looked
events up by id alone, and it now reads the deliveries' event ids once (SQLite) or joins
them (PostgreSQL) instead.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_runtime_event_deliveries_event_id", table_name="runtime_event_deliveries")


def downgrade() -> None:
    op.create_index(
        "ix_runtime_event_deliveries_event_id", "runtime_event_deliveries", ["event_id"]
    )
