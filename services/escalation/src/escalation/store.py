"""escalation's tables (schema ``escalation``): clocks with their next due time, policies, calendar overrides."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Boolean, Column, Date, DateTime, Index, Integer, MetaData, Table, Text, Uuid, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_messaging.tables import make_inbox_table, make_outbox_table

from .domain import Clock
from .policy import SlaPolicy

SCHEMA = "escalation"
metadata: MetaData = service_metadata(SCHEMA)

clock = Table(
    "clock",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("colour", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    # The durable timer: the next moment tick() has something to do; NULL when nothing is pending.
    Column("next_due_at", DateTime(timezone=True)),
    Column("data", JSONB, nullable=False),  # the whole domain Clock
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_clock_next_due", clock.c.next_due_at, postgresql_where=text("next_due_at IS NOT NULL"))
Index("ix_clock_board", clock.c.tenant, clock.c.colour, clock.c.due_at)

policy = Table(
    "policy",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("version", Integer, primary_key=True),  # immutable versions: clocks snapshot (key, version)
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

calendar_override = Table(
    "calendar_override",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("is_workday", Boolean, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)

_CLOCK = TypeAdapter(Clock)


def clock_values(c: Clock) -> dict[str, Any]:
    return {
        "ticket_id": c.ticket_id,
        "tenant": c.tenant,
        "unit_code": c.unit_code,
        "state": c.state,
        "colour": c.colour,
        "due_at": c.due_at,
        "next_due_at": c.next_due_at,
        "data": _CLOCK.dump_python(c, mode="json"),
    }


async def insert_clock(session: AsyncSession, c: Clock) -> bool:
    """False if the ticket already has a clock (a re-dispatch keeps the first one)."""
    stmt = insert(clock).values(**clock_values(c)).on_conflict_do_nothing(index_elements=["ticket_id"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def save_clock(session: AsyncSession, c: Clock) -> None:
    await session.execute(
        clock.update().where(clock.c.ticket_id == c.ticket_id).values(**clock_values(c), updated_at=func.now())
    )


async def get_clock(session: AsyncSession, ticket_id: uuid.UUID) -> Clock | None:
    row = (await session.execute(select(clock.c.data).where(clock.c.ticket_id == ticket_id))).first()
    return _CLOCK.validate_python(row.data) if row else None


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Clock]:
    """Due clocks, locked for this transaction; other timer replicas skip them."""
    rows = (
        await session.execute(
            select(clock.c.data)
            .where(clock.c.next_due_at <= now)
            .order_by(clock.c.next_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    return [_CLOCK.validate_python(r.data) for r in rows]


async def board(session: AsyncSession, tenant: str, colour: str | None, limit: int) -> list[Clock]:
    stmt = select(clock.c.data).where(clock.c.tenant == tenant, clock.c.state != "stopped")
    if colour:
        stmt = stmt.where(clock.c.colour == colour)
    rows = (await session.execute(stmt.order_by(clock.c.due_at).limit(limit))).all()
    return [_CLOCK.validate_python(r.data) for r in rows]


async def tenant_policies(session: AsyncSession, tenant: str) -> dict[str, SlaPolicy]:
    """The newest version of each tenant-defined policy."""
    rows = (
        await session.execute(
            select(policy.c.key, policy.c.data)
            .where(policy.c.tenant == tenant)
            .order_by(policy.c.key, policy.c.version.desc())
            .distinct(policy.c.key)
        )
    ).all()
    return {r.key: SlaPolicy.from_dict(r.data) for r in rows}


async def policy_version(session: AsyncSession, tenant: str, key: str, version: int) -> SlaPolicy | None:
    row = (
        await session.execute(
            select(policy.c.data).where(policy.c.tenant == tenant, policy.c.key == key, policy.c.version == version)
        )
    ).first()
    return SlaPolicy.from_dict(row.data) if row else None


async def overrides(session: AsyncSession, tenant: str) -> dict[date, bool]:
    rows = (
        await session.execute(
            select(calendar_override.c.day, calendar_override.c.is_workday).where(calendar_override.c.tenant == tenant)
        )
    ).all()
    return {r.day: r.is_workday for r in rows}
