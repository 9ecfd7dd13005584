"""reporter's name, sealed like the phone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reporter_contact", sa.Column("name_sealed", sa.Text(), nullable=True), schema="intake")


def downgrade() -> None:
    op.drop_column("reporter_contact", "name_sealed", schema="intake")
