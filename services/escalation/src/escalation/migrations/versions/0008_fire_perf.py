"""clock_plan: firing plans move off the clock row

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 22:00:00

Every firing rewrites its clock row (a new row version, whole), while the ≈ 1 KB plan only changes
when the clock is armed or changed; at that size it stays inline (PostgreSQL moves values out of line
only for rows over ≈ 2 KB, whatever ``toast_tuple_target`` says). In a table of its own the firing
update writes the ≈ 250-byte state instead of ≈ 1.2 KB (docs/escalation.md § Benchmark).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "escalation"


def upgrade() -> None:
    op.create_table(
        "clock_plan",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "kind", "round", name=op.f("pk_clock_plan")),
        schema=S,
    )
    op.execute(
        f"INSERT INTO {S}.clock_plan (ticket_id, kind, round, plan) "
        f"SELECT ticket_id, kind, round, plan FROM {S}.clock WHERE plan_len > 0 AND plan IS NOT NULL"
    )
    op.drop_column("clock", "plan", schema=S)


def downgrade() -> None:
    op.add_column("clock", sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema=S)
    op.execute(
        f"UPDATE {S}.clock c SET plan = p.plan FROM {S}.clock_plan p "
        "WHERE p.ticket_id = c.ticket_id AND p.kind = c.kind AND p.round = c.round"
    )
    op.drop_table("clock_plan", schema=S)
