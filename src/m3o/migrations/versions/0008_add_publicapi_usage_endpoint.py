"""add publicapi usage endpoint

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "publicapi_apis",
        sa.Column("usage_endpoint", sa.String(length=200), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("publicapi_apis", "usage_endpoint")
