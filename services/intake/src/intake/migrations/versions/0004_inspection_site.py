"""the 点位 of a campaign inspection finding

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:03:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("site", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="intake")


def downgrade() -> None:
    op.drop_column("ticket", "site", schema="intake")
