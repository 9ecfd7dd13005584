"""routing's tables (schema ``routing``): directory versions, dispatch decisions, routing's read model of
open tickets (for duplicates and the manual queue) and return (退单) requests. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_messaging.tables import make_inbox_table, make_outbox_table

from .domain import OPEN_STATUSES, OpenTicket, ReturnRequest, TicketToRoute

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

# Routing's own view of a ticket, kept from ticket.* events: what re-routing needs (the fields of
# ticket.received), where the ticket stands for routing, and its duplicates. Never any personal data.
ticket = Table(
    "ticket",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ticket_no", Text, nullable=False),
    Column("category_code", Text, nullable=False),
    Column("demand_type", Text),
    Column("priority", Text, nullable=False),
    Column("lon", Float),  # WGS-84
    Column("lat", Float),
    Column("address", Text),
    Column("area_code", Text),
    Column("caller_hash", Text),  # intake's keyed hash, never the phone: "same caller" for 一事多报
    Column("received_at", DateTime(timezone=True), nullable=False),
    # routing | awaiting_manual | dispatched | accepted | return_requested | merged | closed
    Column("status", Text, nullable=False),
    Column("unit_code", Text),
    Column("co_unit_codes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("grid_code", Text),
    Column("parent_ticket_id", Uuid),
    Column("duplicate_count", Integer, nullable=False, server_default="0"),
    Column("returned_by", JSONB, nullable=False, server_default=text("'[]'::jsonb")),  # approved 退单 units
    Column("manual_reason_code", Text),
    Column("manual_reason", Text),
    Column("suggested_unit_codes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("queued_at", DateTime(timezone=True)),  # entered the manual queue (oldest first)
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_ticket_duplicates", "tenant", "category_code", "received_at"),
    Index("ix_ticket_queue", "tenant", "status", "queued_at"),
)

return_request = Table(
    "return_request",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),  # the ticket.return_requested it came from
    Column("ticket_id", Uuid, nullable=False, index=True),
    Column("tenant", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("reason_code", Text, nullable=False),
    Column("basis", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    # Close of business of the Nth working day; NULL when the tenant's calendar has a gap (then
    # ``calendar_error`` says why, and only a dispatcher decides: no timeout verdict on a guess).
    Column("review_due_at", DateTime(timezone=True)),
    Column("calendar_error", Text),
    Column("status", Text, nullable=False),  # pending | approved | rejected
    Column("reviewer", Text),
    Column("reason", Text),
    Column("reviewed_at", DateTime(timezone=True)),
    Index("ix_return_request_pending", "status", "review_due_at"),
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


# -- routing's read model of tickets ------------------------------------------------------------


def _open_ticket(row: Any) -> OpenTicket:
    location = (row.lon, row.lat) if row.lon is not None and row.lat is not None else None
    return OpenTicket(
        ticket=TicketToRoute(
            ticket_id=row.ticket_id,
            tenant=row.tenant,
            category_code=row.category_code,
            demand_type=row.demand_type,
            priority=row.priority,
            location=location,
            address=row.address,
            area_code=row.area_code,
            caller_hash=row.caller_hash,
        ),
        ticket_no=row.ticket_no,
        received_at=row.received_at,
        status=row.status,
        unit_code=row.unit_code,
        parent_ticket_id=row.parent_ticket_id,
        duplicate_count=row.duplicate_count,
        returned_by=tuple(row.returned_by),
    )


async def insert_ticket(
    session: AsyncSession, t: TicketToRoute, *, ticket_no: str, received_at: datetime, now: datetime
) -> bool:
    """Start routing's copy of a ticket; False if it already exists (a re-published ticket.received)."""
    stmt = (
        pg_insert(ticket)
        .values(
            ticket_id=t.ticket_id,
            tenant=t.tenant,
            ticket_no=ticket_no,
            category_code=t.category_code,
            demand_type=t.demand_type,
            priority=t.priority,
            lon=t.location[0] if t.location else None,
            lat=t.location[1] if t.location else None,
            address=t.address,
            area_code=t.area_code,
            caller_hash=t.caller_hash,
            received_at=received_at,
            status="routing",
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["ticket_id"])
        .returning(ticket.c.ticket_id)
    )
    return (await session.execute(stmt)).first() is not None


async def get_ticket(session: AsyncSession, ticket_id: uuid.UUID, *, for_update: bool = False) -> OpenTicket | None:
    stmt = select(ticket).where(ticket.c.ticket_id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _open_ticket(row) if row is not None else None


async def get_ticket_row(session: AsyncSession, ticket_id: uuid.UUID) -> Any:
    return (await session.execute(select(ticket).where(ticket.c.ticket_id == ticket_id))).first()


async def update_ticket(session: AsyncSession, ticket_id: uuid.UUID, now: datetime, **values: Any) -> bool:
    result = await session.execute(
        ticket.update()
        .where(ticket.c.ticket_id == ticket_id)
        .values(updated_at=now, **values)
        .returning(ticket.c.ticket_id)
    )
    return result.first() is not None


async def bump_duplicates(session: AsyncSession, parent_id: uuid.UUID, delta: int, now: datetime) -> None:
    await session.execute(
        ticket.update()
        .where(ticket.c.ticket_id == parent_id)
        .values(duplicate_count=func.greatest(ticket.c.duplicate_count + delta, 0), updated_at=now)
    )


async def lock_duplicate_scope(session: AsyncSession, tenant: str, category_code: str) -> None:
    """Serialise duplicate checks per tenant+category, so two reports of one event on different
    partitions cannot both miss each other."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"dup:{tenant}:{category_code}"))))


async def duplicate_candidates(
    session: AsyncSession, tenant: str, category_code: str, since: datetime, until: datetime
) -> list[OpenTicket]:
    stmt = select(ticket).where(
        ticket.c.tenant == tenant,
        ticket.c.category_code == category_code,
        ticket.c.received_at >= since,
        ticket.c.received_at <= until,
        ticket.c.status.in_(sorted(OPEN_STATUSES)),
        ticket.c.parent_ticket_id.is_(None),
    )
    return [_open_ticket(r) for r in (await session.execute(stmt)).all()]


async def manual_queue(session: AsyncSession, tenant: str, limit: int) -> list[Any]:
    stmt = (
        select(ticket)
        .where(ticket.c.tenant == tenant, ticket.c.status == "awaiting_manual")
        .order_by(ticket.c.queued_at, ticket.c.received_at, ticket.c.ticket_id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def children(session: AsyncSession, parent_id: uuid.UUID) -> list[uuid.UUID]:
    stmt = select(ticket.c.ticket_id).where(ticket.c.parent_ticket_id == parent_id).order_by(ticket.c.received_at)
    return [r[0] for r in (await session.execute(stmt)).all()]


# -- return (退单) requests --------------------------------------------------------------------


async def add_return_request(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    tenant: str,
    request: ReturnRequest,
    review_due_at: datetime | None,
    calendar_error: str | None = None,
) -> int | None:
    stmt = (
        pg_insert(return_request)
        .values(
            event_id=event_id,
            ticket_id=request.ticket_id,
            tenant=tenant,
            unit_code=request.unit_code,
            reason_code=request.reason_code,
            basis=request.basis,
            requested_at=request.requested_at,
            review_due_at=review_due_at,
            calendar_error=calendar_error,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(return_request.c.id)
    )
    row = (await session.execute(stmt)).first()
    return int(row[0]) if row is not None else None


def as_request(row: Any) -> ReturnRequest:
    return ReturnRequest(row.ticket_id, row.unit_code, row.reason_code, row.basis, row.requested_at)


async def get_return_request(session: AsyncSession, request_id: int, *, for_update: bool = False) -> Any:
    stmt = select(return_request).where(return_request.c.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


async def list_return_requests(session: AsyncSession, tenant: str, status: str | None, limit: int) -> list[Any]:
    stmt = select(return_request).where(return_request.c.tenant == tenant)
    if status is not None:
        stmt = stmt.where(return_request.c.status == status)
    stmt = stmt.order_by(return_request.c.requested_at, return_request.c.id).limit(limit)
    return list((await session.execute(stmt)).all())


async def overdue_return_requests(session: AsyncSession, now: datetime, limit: int) -> list[Any]:
    """Pending requests past their review window, locked so that two workers never both decide one."""
    stmt = (
        select(return_request)
        .where(return_request.c.status == "pending", return_request.c.review_due_at <= now)
        .order_by(return_request.c.review_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).all())


async def resolve_return_request(
    session: AsyncSession, request_id: int, *, approved: bool, reviewer: str, reason: str, now: datetime
) -> None:
    await session.execute(
        return_request.update()
        .where(return_request.c.id == request_id)
        .values(status="approved" if approved else "rejected", reviewer=reviewer, reason=reason, reviewed_at=now)
    )
