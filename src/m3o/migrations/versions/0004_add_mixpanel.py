"""add mixpanel

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mixpanel_ignored_customers",
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_mixpanel_ignored_customers")),
    )


def downgrade() -> None:
    op.drop_table("mixpanel_ignored_customers")
