"""Events handed over without delivery rows: the log's ``handed`` and each group's
``handed_through``

On SQLite the owned counters' group commit hands each request event to this process's
consumers. Their delivery rows (two b-trees each, written in the call's commit and deleted
on acknowledgement) were most of that commit's work; now an event handed over has none
for the groups it was handed to, and each group keeps the log rowid through which those
events are settled. At start, the events after it that have no row get one again (a
crashed consumer's).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 00:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "runtime_event_log",
        sa.Column("handed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "runtime_event_groups", sa.Column("handed_through", sa.BigInteger(), nullable=True)
    )
    if op.get_bind().dialect.name == "sqlite":
        # Every event logged so far has its delivery rows: nothing before now is handed.
        op.execute(
            "UPDATE runtime_event_groups SET handed_through ="
            " (SELECT coalesce(max(rowid), 0) FROM runtime_event_log)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Before the columns go: the events handed over and not settled get their rows.
        op.execute(
            "INSERT INTO runtime_event_deliveries"
            " (topic, group_name, event_id, attempts, available_at)"
            " SELECT g.topic, g.group_name, l.id, 1, l.time"
            " FROM runtime_event_groups AS g CROSS JOIN runtime_event_log AS l"
            " WHERE l.topic = g.topic AND l.handed AND l.rowid > g.handed_through"
            " AND NOT EXISTS (SELECT 1 FROM runtime_event_deliveries AS d"
            " WHERE d.topic = g.topic AND d.group_name = g.group_name AND d.event_id = l.id)"
        )
    with op.batch_alter_table("runtime_event_groups") as batch:
        batch.drop_column("handed_through")
    with op.batch_alter_table("runtime_event_log") as batch:
        batch.drop_column("handed")
