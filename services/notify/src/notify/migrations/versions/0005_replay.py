"""replay: attempts made before the last replay of a failed notification; receipts matched by message id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notification",
        sa.Column("replayed_attempts", sa.Integer(), server_default="0", nullable=False),
        schema="notify",
    )
    op.create_index(
        op.f("ix_notify_attempt_provider_message_id"), "attempt", ["provider_message_id"], unique=False, schema="notify"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notify_attempt_provider_message_id"), table_name="attempt", schema="notify")
    op.drop_column("notification", "replayed_attempts", schema="notify")
