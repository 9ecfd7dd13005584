"""clock: the precomputed firing plan (set-based timer)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 06:00:00

Each clock row carries what it will fire (``plan``) and how far it has fired (``plan_pos``); the
timer fires due plans in one SQL statement. Existing rows get no plan (``plan_len`` 0): the timer
ticks them in Python once, which gives them one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "escalation"


def upgrade() -> None:
    op.add_column("clock", sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema=S)
    op.add_column("clock", sa.Column("plan_len", sa.Integer(), server_default="0", nullable=False), schema=S)
    op.add_column("clock", sa.Column("plan_pos", sa.Integer(), server_default="0", nullable=False), schema=S)
    op.drop_index("ix_clock_next_due", table_name="clock", schema=S)
    op.create_index(
        "ix_clock_plan_due", "clock", ["next_due_at"], schema=S, postgresql_where=sa.text("plan_pos < plan_len")
    )
    op.create_index(
        "ix_clock_tick_due",
        "clock",
        ["next_due_at"],
        schema=S,
        postgresql_where=sa.text("next_due_at IS NOT NULL AND plan_pos >= plan_len"),
    )


def downgrade() -> None:
    op.drop_index("ix_clock_tick_due", table_name="clock", schema=S)
    op.drop_index("ix_clock_plan_due", table_name="clock", schema=S)
    op.create_index(
        "ix_clock_next_due", "clock", ["next_due_at"], schema=S, postgresql_where=sa.text("next_due_at IS NOT NULL")
    )
    for c in ("plan_pos", "plan_len", "plan"):
        op.drop_column("clock", c, schema=S)
