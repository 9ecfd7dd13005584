"""receipt wait index: sent notifications still waiting for a carrier receipt

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 04:28:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_notification_awaiting_receipt",
        "notification",
        ["sent_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("delivery = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notification_awaiting_receipt",
        table_name="notification",
        schema="notify",
        postgresql_where=sa.text("delivery = 'sent'"),
    )
