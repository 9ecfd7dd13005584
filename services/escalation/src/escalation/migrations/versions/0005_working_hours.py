"""per-tenant working-hour windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "working_hours",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("windows", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_working_hours")),
        schema="escalation",
    )


def downgrade() -> None:
    op.drop_table("working_hours", schema="escalation")
