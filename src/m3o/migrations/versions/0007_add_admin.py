"""add admin

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_deletions",
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("requested", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_admin_deletions")),
    )
    op.create_index(
        "ix_admin_deletions_completed", "admin_deletions", ["completed"], unique=False
    )
    op.create_table(
        "admin_deletion_steps",
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("deleted", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["admin_deletions.customer_id"],
            name=op.f("fk_admin_deletion_steps_customer_id_admin_deletions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "service", name=op.f("pk_admin_deletion_steps")),
    )


def downgrade() -> None:
    op.drop_table("admin_deletion_steps")
    op.drop_index("ix_admin_deletions_completed", table_name="admin_deletions")
    op.drop_table("admin_deletions")
