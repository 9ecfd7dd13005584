"""caller hash on routing's read model

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # intake's per-tenant keyed hash of the caller (never the phone), for "same caller" duplicates.
    op.add_column("ticket", sa.Column("caller_hash", sa.Text(), nullable=True), schema="routing")


def downgrade() -> None:
    op.drop_column("ticket", "caller_hash", schema="routing")
