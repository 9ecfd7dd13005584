"""read model and returns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:31:05.813642
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Routing's read model of tickets (duplicates, manual queue, 改派) and 退单 requests.
    op.create_table(
        "return_request",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=False),
        sa.Column("reason_code", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_request")),
        sa.UniqueConstraint("event_id", name=op.f("uq_return_request_event_id")),
        schema="routing",
    )
    op.create_index(
        "ix_return_request_pending", "return_request", ["status", "review_due_at"], unique=False, schema="routing"
    )
    op.create_index(
        op.f("ix_routing_return_request_ticket_id"), "return_request", ["ticket_id"], unique=False, schema="routing"
    )
    op.create_table(
        "ticket",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_no", sa.Text(), nullable=False),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column("demand_type", sa.Text(), nullable=True),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("area_code", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=True),
        sa.Column(
            "co_unit_codes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("grid_code", sa.Text(), nullable=True),
        sa.Column("parent_ticket_id", sa.Uuid(), nullable=True),
        sa.Column("duplicate_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "returned_by",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("manual_reason_code", sa.Text(), nullable=True),
        sa.Column("manual_reason", sa.Text(), nullable=True),
        sa.Column(
            "suggested_unit_codes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket")),
        schema="routing",
    )
    op.create_index(
        "ix_ticket_duplicates", "ticket", ["tenant", "category_code", "received_at"], unique=False, schema="routing"
    )
    op.create_index("ix_ticket_queue", "ticket", ["tenant", "status", "queued_at"], unique=False, schema="routing")


def downgrade() -> None:
    op.drop_index("ix_ticket_queue", table_name="ticket", schema="routing")
    op.drop_index("ix_ticket_duplicates", table_name="ticket", schema="routing")
    op.drop_table("ticket", schema="routing")
    op.drop_index(op.f("ix_routing_return_request_ticket_id"), table_name="return_request", schema="routing")
    op.drop_index("ix_return_request_pending", table_name="return_request", schema="routing")
    op.drop_table("return_request", schema="routing")
