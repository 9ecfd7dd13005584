"""lifecycle state, integration sources, nonces, rate counters, PII access audit, attachments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:22:46.125437
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "intake"
TICKET_COLUMNS = [
    sa.Column("platform_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("sla_colour", sa.Text(), server_default="green", nullable=False),
    sa.Column("return_refused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    sa.Column("pending_extension_days", sa.Integer(), nullable=True),
    sa.Column("extension_count", sa.Integer(), server_default="0", nullable=False),
    sa.Column("redo_count", sa.Integer(), server_default="0", nullable=False),
    sa.Column("last_satisfaction", sa.Text(), nullable=True),
    sa.Column("last_resolved", sa.Boolean(), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("merge_parent_id", sa.Uuid(), nullable=True),
    sa.Column("source", sa.Text(), nullable=True),
    sa.Column("external_id", sa.Text(), nullable=True),
    sa.Column("source_hash", sa.Text(), nullable=True),
]


def upgrade() -> None:
    for col in TICKET_COLUMNS:
        op.add_column("ticket", col, schema=S)
    op.add_column("ticket_history", sa.Column("actor_role", sa.Text(), nullable=True), schema=S)
    op.create_index(
        "ix_ticket_worklist",
        "ticket",
        ["tenant", "unit_code", sa.literal_column("received_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        schema=S,
    )
    op.create_index(
        "ux_ticket_source_external",
        "ticket",
        ["tenant", "source", "external_id"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
        schema=S,
    )
    op.create_index(op.f("ix_intake_attachment_ticket_id"), "attachment", ["ticket_id"], unique=False, schema=S)
    op.create_table(
        "pii_access",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text(), nullable=False),
        sa.Column("unit_code", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pii_access")),
        schema=S,
    )
    op.create_index(op.f("ix_intake_pii_access_ticket_id"), "pii_access", ["ticket_id"], unique=False, schema=S)
    op.create_table(
        "rate_counter",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_counter")),
        schema=S,
    )
    op.create_table(
        "request_nonce",
        sa.Column("integration", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("integration", "nonce", name=op.f("pk_request_nonce")),
        schema=S,
    )
    op.create_index(op.f("ix_intake_request_nonce_seen_at"), "request_nonce", ["seen_at"], unique=False, schema=S)


def downgrade() -> None:
    op.drop_index(op.f("ix_intake_request_nonce_seen_at"), table_name="request_nonce", schema=S)
    op.drop_table("request_nonce", schema=S)
    op.drop_table("rate_counter", schema=S)
    op.drop_index(op.f("ix_intake_pii_access_ticket_id"), table_name="pii_access", schema=S)
    op.drop_table("pii_access", schema=S)
    op.drop_index(op.f("ix_intake_attachment_ticket_id"), table_name="attachment", schema=S)
    op.drop_table("attachment", schema=S)
    op.drop_index("ux_ticket_source_external", table_name="ticket", schema=S)
    op.drop_index("ix_ticket_worklist", table_name="ticket", schema=S)
    op.drop_column("ticket_history", "actor_role", schema=S)
    for col in reversed(TICKET_COLUMNS):
        op.drop_column("ticket", col.name, schema=S)
