"""limits: recipient lookup hash and urgency on notifications, per-tenant limits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notification", sa.Column("recipient_hash", sa.Text(), nullable=True), schema="notify")
    op.add_column(
        "notification",
        sa.Column("urgent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="notify",
    )
    op.create_index(
        "ix_notification_recipient_recent",
        "notification",
        ["recipient_hash", "claimed_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("recipient_hash IS NOT NULL"),
    )
    op.create_table(
        "tenant_limits",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=False),
        sa.Column("per_recipient_hour", sa.Integer(), nullable=True),
        sa.Column("per_recipient_day", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_tenant_limits")),
        schema="notify",
    )


def downgrade() -> None:
    op.drop_table("tenant_limits", schema="notify")
    op.drop_index(
        "ix_notification_recipient_recent",
        table_name="notification",
        schema="notify",
        postgresql_where=sa.text("recipient_hash IS NOT NULL"),
    )
    op.drop_column("notification", "urgent", schema="notify")
    op.drop_column("notification", "recipient_hash", schema="notify")
