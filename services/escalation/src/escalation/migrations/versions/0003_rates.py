"""clock.stop_reason and callback results, for the rates and rankings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clock", sa.Column("stop_reason", sa.Text(), nullable=True), schema="escalation")
    op.create_table(
        "callback",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=False),
        sa.Column("satisfaction", sa.Text(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_callback")),
        schema="escalation",
    )
    op.create_index("ix_callback_tenant_at", "callback", ["tenant", "at"], unique=False, schema="escalation")


def downgrade() -> None:
    op.drop_index("ix_callback_tenant_at", table_name="callback", schema="escalation")
    op.drop_table("callback", schema="escalation")
    op.drop_column("clock", "stop_reason", schema="escalation")
