"""channels: tenant rules (event × role → channel steps), recipients' channel addresses, preferences, fallbacks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notification", sa.Column("fallback", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="notify"
    )
    op.create_table(
        "tenant_rule",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "event_type", "role", name=op.f("pk_tenant_rule")),
        schema="notify",
    )
    op.create_table(
        "recipient_channel",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("address_sealed", sa.Text(), nullable=False),
        sa.Column("masked", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", "ref", "channel", name=op.f("pk_recipient_channel")),
        schema="notify",
    )
    op.create_table(
        "recipient_pref",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", "ref", name=op.f("pk_recipient_pref")),
        schema="notify",
    )


def downgrade() -> None:
    op.drop_table("recipient_pref", schema="notify")
    op.drop_table("recipient_channel", schema="notify")
    op.drop_table("tenant_rule", schema="notify")
    op.drop_column("notification", "fallback", schema="notify")
