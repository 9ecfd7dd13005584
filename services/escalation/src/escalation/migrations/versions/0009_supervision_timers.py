"""supervision-record timers (announced_at, overdue_at and their partial indexes) and review_clock

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "supervision", sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True), schema="escalation"
    )
    op.add_column(
        "supervision", sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True), schema="escalation"
    )
    # Records opened before this revision were never announced: do not announce them all at once now
    # (their overdue deadlines still fire, late, once).
    op.execute("UPDATE escalation.supervision SET announced_at = opened_at")
    op.create_index(
        "ix_supervision_unannounced",
        "supervision",
        ["opened_at"],
        schema="escalation",
        postgresql_where=sa.text("announced_at IS NULL"),
    )
    op.create_index(
        "ix_supervision_overdue_due",
        "supervision",
        ["due_at"],
        schema="escalation",
        postgresql_where=sa.text("closed_at IS NULL AND overdue_at IS NULL"),
    )
    op.create_table(
        "review_clock",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_no", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=True),
        sa.Column("review", sa.Text(), nullable=False),
        sa.Column("policy_key", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("time_limit", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_clock")),
        schema="escalation",
    )
    op.create_index(
        "ix_review_clock_due",
        "review_clock",
        ["next_due_at"],
        schema="escalation",
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_index("ix_review_clock_ticket", "review_clock", ["ticket_id"], schema="escalation")


def downgrade() -> None:
    op.drop_index("ix_review_clock_ticket", table_name="review_clock", schema="escalation")
    op.drop_index("ix_review_clock_due", table_name="review_clock", schema="escalation")
    op.drop_table("review_clock", schema="escalation")
    op.drop_index("ix_supervision_overdue_due", table_name="supervision", schema="escalation")
    op.drop_index("ix_supervision_unannounced", table_name="supervision", schema="escalation")
    op.drop_column("supervision", "overdue_at", schema="escalation")
    op.drop_column("supervision", "announced_at", schema="escalation")
