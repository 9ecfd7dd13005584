"""attempts: one row per provider call, failover position, settlement indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:23:11.494839
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notification", sa.Column("provider_index", sa.Integer(), server_default="0", nullable=False), schema="notify"
    )
    op.add_column(
        "notification",
        sa.Column("provider_attempts", sa.Integer(), server_default="0", nullable=False),
        schema="notify",
    )
    op.add_column("notification", sa.Column("attempt_id", sa.Uuid(), nullable=True), schema="notify")
    op.create_index(
        "ix_notification_sending",
        "notification",
        ["claimed_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_index(
        "ix_notification_unsettled",
        "notification",
        ["next_attempt_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("status = 'ambiguous'"),
    )
    op.create_table(
        "attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notify.notification.id"], name=op.f("fk_attempt_notification_id_notification")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt")),
        sa.UniqueConstraint("notification_id", "no", name=op.f("uq_attempt_notification_id")),
        schema="notify",
    )
    op.create_index(
        op.f("ix_notify_attempt_notification_id"), "attempt", ["notification_id"], unique=False, schema="notify"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notify_attempt_notification_id"), table_name="attempt", schema="notify")
    op.drop_table("attempt", schema="notify")
    op.drop_index(
        "ix_notification_unsettled",
        table_name="notification",
        schema="notify",
        postgresql_where=sa.text("status = 'ambiguous'"),
    )
    op.drop_index(
        "ix_notification_sending",
        table_name="notification",
        schema="notify",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_column("notification", "attempt_id", schema="notify")
    op.drop_column("notification", "provider_attempts", schema="notify")
    op.drop_column("notification", "provider_index", schema="notify")
