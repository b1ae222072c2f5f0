"""The trace context of each event (log and outbox)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "runtime_event_log", sa.Column("traceparent", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "runtime_event_outbox", sa.Column("traceparent", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("runtime_event_outbox") as batch:
        batch.drop_column("traceparent")
    with op.batch_alter_table("runtime_event_log") as batch:
        batch.drop_column("traceparent")
