"""12345 attachment URLs fetched later (pending/stored/failed); the last reply text for notify

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for col in ("storage_key", "content_type", "size", "sha256"):
        op.alter_column("attachment", col, nullable=True, schema="intake")
    op.add_column("attachment", sa.Column("source_url", sa.Text(), nullable=True), schema="intake")
    op.add_column(
        "attachment",
        sa.Column("state", sa.Text(), nullable=False, server_default="stored"),
        schema="intake",
    )
    op.add_column(
        "attachment", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"), schema="intake"
    )
    op.add_column("attachment", sa.Column("next_attempt_at", sa.DateTime(timezone=True)), schema="intake")
    op.add_column("attachment", sa.Column("last_error", sa.Text()), schema="intake")
    op.create_index(
        "ux_attachment_source_url",
        "attachment",
        ["ticket_id", "source_url"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("source_url IS NOT NULL"),
    )
    op.create_index(
        "ix_attachment_due",
        "attachment",
        ["next_attempt_at"],
        schema="intake",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.add_column("ticket", sa.Column("last_reply", sa.Text(), nullable=True), schema="intake")


def downgrade() -> None:
    op.drop_column("ticket", "last_reply", schema="intake")
    op.drop_index("ix_attachment_due", table_name="attachment", schema="intake")
    op.drop_index("ux_attachment_source_url", table_name="attachment", schema="intake")
    for col in ("last_error", "next_attempt_at", "attempts", "state", "source_url"):
        op.drop_column("attachment", col, schema="intake")
    op.execute("DELETE FROM intake.attachment WHERE storage_key IS NULL")
    for col in ("storage_key", "content_type", "size", "sha256"):
        op.alter_column("attachment", col, nullable=False, schema="intake")
