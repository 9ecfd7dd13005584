"""receipts: carrier delivery receipts and delivery state per notification

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notification", sa.Column("delivery", sa.Text(), server_default="pending", nullable=False), schema="notify"
    )
    op.add_column("notification", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True), schema="notify")
    # Rows sent before receipts were tracked start as 'sent'.
    op.execute("UPDATE notify.notification SET delivery = status WHERE status IN ('sent', 'failed')")
    op.create_table(
        "receipt",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("attempt_id", sa.Uuid(), nullable=True),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("out_id", sa.Uuid(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("provider", "key", name=op.f("pk_receipt")),
        schema="notify",
    )
    op.create_index(
        "ix_receipt_unmatched",
        "receipt",
        ["provider_message_id"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("notification_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_receipt_unmatched",
        table_name="receipt",
        schema="notify",
        postgresql_where=sa.text("notification_id IS NULL"),
    )
    op.drop_table("receipt", schema="notify")
    op.drop_column("notification", "delivered_at", schema="notify")
    op.drop_column("notification", "delivery", schema="notify")
