"""v1 keys imported from M3O

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "v1_keys",
        sa.Column("legacy", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "v1_removed_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("removed", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_v1_removed_keys")),
    )


def downgrade() -> None:
    op.drop_table("v1_removed_keys")
    with op.batch_alter_table("v1_keys") as batch:
        batch.drop_column("legacy")
