"""add endtoend

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 20:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "endtoend_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endtoend_codes")),
    )
    op.create_index("ix_endtoend_codes_received", "endtoend_codes", ["received"], unique=False)
    op.create_table(
        "endtoend_results",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_endtoend_results")),
    )
    op.create_index("ix_endtoend_results_finished", "endtoend_results", ["finished"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_endtoend_results_finished", table_name="endtoend_results")
    op.drop_table("endtoend_results")
    op.drop_index("ix_endtoend_codes_received", table_name="endtoend_codes")
    op.drop_table("endtoend_codes")
