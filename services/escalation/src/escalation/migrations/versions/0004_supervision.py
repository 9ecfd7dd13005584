"""supervision records (督办单, 挂牌督办, 约谈, 问责) and their 销号

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:20:00
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
    op.create_table(
        "supervision",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_no", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("step_code", sa.Text(), nullable=False),
        sa.Column("recipients", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sa.Text(), nullable=True),
        sa.Column("verification", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision")),
        schema="escalation",
    )
    op.create_index(
        "ix_supervision_open",
        "supervision",
        ["tenant", "due_at"],
        unique=False,
        schema="escalation",
        postgresql_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_supervision_open",
        table_name="supervision",
        schema="escalation",
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.drop_table("supervision", schema="escalation")
