"""syncback: 12345 platform callback endpoints, hotline orders and the ordered push queue

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 05:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "syncback_order",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("ticket_no", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_syncback_order")),
        schema="notify",
    )
    op.create_table(
        "syncback_endpoint",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "integration", name=op.f("pk_syncback_endpoint")),
        schema="notify",
    )
    op.create_table(
        "syncback_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_code", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncback_item")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_syncback_item_dedupe_key")),
        sa.UniqueConstraint("seq", name=op.f("uq_syncback_item_seq")),
        schema="notify",
    )
    op.create_index(
        "ix_syncback_item_order_pending",
        "syncback_item",
        ["tenant", "integration", "external_id", "seq"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_syncback_item_due",
        "syncback_item",
        ["next_attempt_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_syncback_item_ticket", "syncback_item", ["ticket_id"], unique=False, schema="notify")


def downgrade() -> None:
    op.drop_index("ix_syncback_item_ticket", table_name="syncback_item", schema="notify")
    op.drop_index("ix_syncback_item_due", table_name="syncback_item", schema="notify")
    op.drop_index("ix_syncback_item_order_pending", table_name="syncback_item", schema="notify")
    op.drop_table("syncback_item", schema="notify")
    op.drop_table("syncback_endpoint", schema="notify")
    op.drop_table("syncback_order", schema="notify")
