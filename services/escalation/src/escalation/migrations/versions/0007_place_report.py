"""place_report (repeat points), sponsor_area (包抓 rankings), sla_rule + ticket_intake (policy table),
ix_clock_overdue

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "place_report",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_no", sa.Text(), nullable=False),
        sa.Column("place_key", sa.Text(), nullable=False),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("grid_code", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_place_report")),
        schema="escalation",
    )
    op.create_index("ix_place_report_key", "place_report", ["tenant", "received_at", "place_key"], schema="escalation")

    op.create_table(
        "sponsor_area",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("area_code", sa.Text(), nullable=False),
        sa.Column("sponsor_code", sa.Text(), nullable=False),
        sa.Column("sponsor_name", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "area_code", name=op.f("pk_sponsor_area")),
        schema="escalation",
    )

    op.create_table(
        "sla_rule",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy_key", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant", "category_code", "priority", "demand_type", "version", name=op.f("pk_sla_rule")
        ),
        schema="escalation",
    )
    op.create_table(
        "ticket_intake",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_intake")),
        schema="escalation",
    )
    op.create_index(
        "ix_clock_overdue",
        "clock",
        ["tenant", "due_at"],
        schema="escalation",
        postgresql_where=sa.text("kind = 'handle' AND state <> 'stopped'"),
    )


def downgrade() -> None:
    op.drop_index("ix_clock_overdue", table_name="clock", schema="escalation")
    op.drop_table("ticket_intake", schema="escalation")
    op.drop_table("sla_rule", schema="escalation")
    op.drop_table("sponsor_area", schema="escalation")
    op.drop_index("ix_place_report_key", table_name="place_report", schema="escalation")
    op.drop_table("place_report", schema="escalation")
