"""clock: one row per (ticket, kind, round), every Clock field a column

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:45:00

The timer claims and updates thousands of clocks a second; typed columns replace the JSONB document
(which was decoded and re-validated per row). Existing clocks become the handling clock of round 0,
their fields copied out of the document.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "escalation"
# column -> (type, SQL reading it from the old document, NOT NULL)
COLUMNS: dict[str, tuple[sa.types.TypeEngine[object], str, bool]] = {
    "kind": (sa.Text(), "'handle'", True),
    "round": (sa.Integer(), "0", True),
    "ticket_no": (sa.Text(), "data->>'ticket_no'", True),
    "grid_code": (sa.Text(), "data->>'grid_code'", False),
    "policy_key": (sa.Text(), "data->>'policy_key'", True),
    "policy_version": (sa.Integer(), "(data->>'policy_version')::int", True),
    "requested_policy_key": (sa.Text(), "data->>'requested_policy_key'", True),
    "started_at": (sa.DateTime(timezone=True), "(data->>'started_at')::timestamptz", True),
    "warn_at": (sa.DateTime(timezone=True), "(data->>'warn_at')::timestamptz", True),
    "due_source": (sa.Text(), "data->>'due_source'", True),
    "provisional": (sa.Boolean(), "(data->>'provisional')::boolean", True),
    "warned": (sa.Boolean(), "(data->>'warned')::boolean", True),
    "breached": (sa.Boolean(), "(data->>'breached')::boolean", True),
    "next_step": (sa.Integer(), "(data->>'next_step')::int", True),
    "repeat_no": (sa.Integer(), "(data->>'repeat_no')::int", True),
    "next_step_at": (sa.DateTime(timezone=True), "(data->>'next_step_at')::timestamptz", False),
    "level": (sa.Text(), "data->>'level'", False),
    "paused_at": (sa.DateTime(timezone=True), "(data->>'paused_at')::timestamptz", False),
    "paused_for": (sa.Interval(), "(data->>'paused_for')::interval", True),
    "held_after_warn": (sa.Interval(), "(data->>'held_after_warn')::interval", True),
    "held_after_breach": (sa.Interval(), "(data->>'held_after_breach')::interval", True),
    "extension_no": (sa.Integer(), "(data->>'extension_no')::int", True),
    "stopped_at": (sa.DateTime(timezone=True), "(data->>'stopped_at')::timestamptz", False),
    "calendar_gap": (sa.Date(), "(data->>'calendar_gap')::date", False),
}


def upgrade() -> None:
    for name, (type_, _, _) in COLUMNS.items():
        op.add_column("clock", sa.Column(name, type_, nullable=True), schema=S)
    op.execute(f"UPDATE {S}.clock SET " + ", ".join(f"{n} = {sql}" for n, (_, sql, _) in COLUMNS.items()))
    for name, (_, _, not_null) in COLUMNS.items():
        if not_null:
            op.alter_column("clock", name, nullable=False, schema=S)
    op.drop_column("clock", "data", schema=S)
    op.drop_constraint("pk_clock", "clock", schema=S, type_="primary")
    op.create_primary_key("pk_clock", "clock", ["ticket_id", "kind", "round"], schema=S)
    op.drop_index("ix_clock_board", table_name="clock", schema=S)
    op.create_index(
        "ix_clock_board",
        "clock",
        ["tenant", "colour", "due_at"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("state <> 'stopped'"),
    )


def downgrade() -> None:
    # Only the newest round of each ticket's handling clock fits the old one-clock-per-ticket shape.
    op.execute(f"DELETE FROM {S}.clock WHERE kind <> 'handle'")
    op.execute(
        f"DELETE FROM {S}.clock c USING {S}.clock n WHERE n.ticket_id = c.ticket_id AND n.kind = c.kind "
        "AND n.round > c.round"
    )
    op.drop_index("ix_clock_board", table_name="clock", schema=S, postgresql_where=sa.text("state <> 'stopped'"))
    op.create_index("ix_clock_board", "clock", ["tenant", "colour", "due_at"], unique=False, schema=S)
    op.drop_constraint("pk_clock", "clock", schema=S, type_="primary")
    op.create_primary_key("pk_clock", "clock", ["ticket_id"], schema=S)
    op.add_column("clock", sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema=S)
    fields = ", ".join(f"'{n}', {n}" for n in ("ticket_id", "tenant", "unit_code", "state", "due_at", "next_due_at"))
    rest = ", ".join(f"'{n}', {n}" for n in COLUMNS if n not in ("kind", "round"))
    op.execute(f"UPDATE {S}.clock SET data = jsonb_build_object({fields}) || jsonb_build_object({rest})")
    op.alter_column("clock", "data", nullable=False, schema=S)
    for name in COLUMNS:
        op.drop_column("clock", name, schema=S)
