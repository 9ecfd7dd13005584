"""routing's tables (schema ``routing``): directory versions and dispatch decisions. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, MetaData, Table, Text, Uuid, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_messaging.tables import make_inbox_table, make_outbox_table

SCHEMA = "routing"
metadata: MetaData = service_metadata(SCHEMA)

directory_version = Table(
    "directory_version",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("grids", JSONB, nullable=False),  # the GeoJSON FeatureCollection as imported (WGS-84)
    Column("bundle", JSONB, nullable=False),  # units, categories, rules, gazetteer
    Column("report", JSONB, nullable=False),  # validation warnings at import
    Column("imported_by", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

decision = Table(
    "decision",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("ticket_id", Uuid, nullable=False, index=True),
    Column("tenant", Text, nullable=False),
    Column("outcome", Text, nullable=False),  # assigned | needs_manual
    Column("unit_code", Text),
    Column("rule_id", Text),
    Column("reason_code", Text),
    Column("directory_version", Integer),
    Column("trail", JSONB, nullable=False),  # why: each step of the decision, for "why unit X?"
    Column("event", JSONB, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)


async def latest_version(session: AsyncSession, tenant: str) -> int | None:
    stmt = select(func.max(directory_version.c.version)).where(directory_version.c.tenant == tenant)
    version: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return version


async def load_version(session: AsyncSession, tenant: str, version: int) -> Any:
    return (
        await session.execute(
            select(directory_version).where(
                directory_version.c.tenant == tenant, directory_version.c.version == version
            )
        )
    ).one()


async def add_version(
    session: AsyncSession,
    *,
    tenant: str,
    grids: dict[str, Any],
    bundle: dict[str, Any],
    report: list[dict[str, Any]],
    imported_by: str,
) -> int:
    # Serialise imports per tenant so two admins cannot both create version N+1.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"directory:{tenant}"))))
    version = ((await latest_version(session, tenant)) or 0) + 1
    await session.execute(
        directory_version.insert().values(
            tenant=tenant, version=version, grids=grids, bundle=bundle, report=report, imported_by=imported_by
        )
    )
    return version


async def add_decision(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    tenant: str,
    outcome: str,
    unit_code: str | None,
    rule_id: str | None,
    reason_code: str | None,
    directory_version: int | None,
    trail: list[str],
    event: dict[str, Any],
    decided_at: datetime,
) -> None:
    await session.execute(
        decision.insert().values(
            ticket_id=ticket_id,
            tenant=tenant,
            outcome=outcome,
            unit_code=unit_code,
            rule_id=rule_id,
            reason_code=reason_code,
            directory_version=directory_version,
            trail=trail,
            event=event,
            decided_at=decided_at,
        )
    )


async def decisions(session: AsyncSession, tenant: str, ticket_id: uuid.UUID) -> list[Any]:
    return list(
        (
            await session.execute(
                select(decision)
                .where(decision.c.tenant == tenant, decision.c.ticket_id == ticket_id)
                .order_by(decision.c.id)
            )
        ).all()
    )
