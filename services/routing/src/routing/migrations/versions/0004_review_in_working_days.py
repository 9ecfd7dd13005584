"""退单 review deadline in working days: nullable when the calendar has a gap

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A year without working-day data gives no deadline (never a guess): NULL + the reason.
    op.alter_column("return_request", "review_due_at", nullable=True, schema="routing")
    op.add_column("return_request", sa.Column("calendar_error", sa.Text(), nullable=True), schema="routing")


def downgrade() -> None:
    op.drop_column("return_request", "calendar_error", schema="routing")
    op.alter_column("return_request", "review_due_at", nullable=False, schema="routing")
