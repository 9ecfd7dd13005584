"""intake's tables (schema ``intake``) and the queries on them. Never commits: the edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
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
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_contracts.intake import ReporterRef
from gridline_messaging.tables import make_inbox_table, make_outbox_table

from .domain import HistoryEntry, Location, Status, Ticket

SCHEMA = "intake"
metadata: MetaData = service_metadata(SCHEMA)

ticket = Table(
    "ticket",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ticket_no", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("category_code", Text, nullable=False),
    Column("demand_type", Text),
    Column("priority", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("location", JSONB),  # {lon, lat (WGS-84), crs_original, lon_original, lat_original}
    Column("address", Text),
    Column("area_code", Text),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("reporter_id", Uuid),
    Column("reporter_view", JSONB, nullable=False),  # ReporterRef: sealed token + masked phone, never clear
    Column("query_code_hash", Text, nullable=False),
    Column("unit_code", Text),
    Column("co_unit_codes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("grid_code", Text),
    Column("sla_policy_key", Text),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_ticket_tenant_status", ticket.c.tenant, ticket.c.status)

reporter_contact = Table(
    "reporter_contact",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("phone_sealed", Text),  # AES-GCM under PII_KEY
    Column("phone_hash", Text),  # keyed hash: same-caller lookups without decrypting
    Column("openid_sealed", Text),
    Column("confidential", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_reporter_contact_phone_hash", reporter_contact.c.tenant, reporter_contact.c.phone_hash)

ticket_history = Table(
    "ticket_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("ticket_id", Uuid, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("event_id", Uuid),  # the message that caused it, for tracing
)

ticket_counter = Table(
    "ticket_counter",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("day", DateTime(timezone=False), primary_key=True),
    Column("seq", Integer, nullable=False),
)

idempotency = Table(
    "idempotency_key",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)


async def next_ticket_no(session: AsyncSession, tenant: str, day: date) -> str:
    """工单编号: <tenant>-<yyyymmdd>-<6-digit daily sequence>, e.g. 330106-20261122-000042."""
    stmt = (
        insert(ticket_counter)
        .values(tenant=tenant, day=datetime(day.year, day.month, day.day), seq=1)
        .on_conflict_do_update(index_elements=["tenant", "day"], set_={"seq": ticket_counter.c.seq + 1})
        .returning(ticket_counter.c.seq)
    )
    seq = (await session.execute(stmt)).scalar_one()
    return f"{tenant}-{day:%Y%m%d}-{seq:06d}"


async def insert_contact(
    session: AsyncSession,
    *,
    tenant: str,
    phone_sealed: str | None,
    phone_hash: str | None,
    openid_sealed: str | None,
    confidential: bool,
) -> uuid.UUID:
    rid = uuid.uuid4()
    await session.execute(
        reporter_contact.insert().values(
            id=rid,
            tenant=tenant,
            phone_sealed=phone_sealed,
            phone_hash=phone_hash,
            openid_sealed=openid_sealed,
            confidential=int(confidential),
        )
    )
    return rid


def _location_json(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {
        "lon": loc.lon,
        "lat": loc.lat,
        "crs_original": loc.crs_original,
        "lon_original": loc.lon_original,
        "lat_original": loc.lat_original,
    }


async def insert_ticket(
    session: AsyncSession, t: Ticket, *, reporter_id: uuid.UUID | None, query_code_hash: str
) -> None:
    await session.execute(
        ticket.insert().values(
            id=t.id,
            tenant=t.tenant,
            ticket_no=t.ticket_no,
            status=t.status.value,
            channel=t.channel,
            category_code=t.category_code,
            demand_type=t.demand_type,
            priority=t.priority,
            description=t.description,
            location=_location_json(t.location),
            address=t.address,
            area_code=t.area_code,
            reported_at=t.reported_at,
            received_at=t.received_at,
            reporter_id=reporter_id,
            reporter_view=t.reporter.model_dump(mode="json"),
            query_code_hash=query_code_hash,
            version=t.version,
        )
    )


async def update_ticket(session: AsyncSession, t: Ticket, expected_version: int) -> None:
    res = await session.execute(
        ticket.update()
        .where(ticket.c.id == t.id, ticket.c.version == expected_version)
        .values(
            status=t.status.value,
            unit_code=t.unit_code,
            co_unit_codes=list(t.co_unit_codes),
            grid_code=t.grid_code,
            sla_policy_key=t.sla_policy_key,
            dispatched_at=t.dispatched_at,
            version=t.version,
            updated_at=func.now(),
        )
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"ticket {t.id} changed concurrently")


async def add_history(
    session: AsyncSession, ticket_id: uuid.UUID, entry: HistoryEntry, at: datetime, event_id: uuid.UUID | None = None
) -> None:
    await session.execute(
        ticket_history.insert().values(
            ticket_id=ticket_id,
            at=at,
            action=entry.action,
            from_status=entry.from_status.value if entry.from_status else None,
            to_status=entry.to_status.value,
            actor=entry.actor,
            note=entry.note,
            event_id=event_id,
        )
    )


def _row_to_ticket(r: Any) -> Ticket:
    loc = r.location
    return Ticket(
        id=r.id,
        tenant=r.tenant,
        ticket_no=r.ticket_no,
        status=Status(r.status),
        channel=r.channel,
        category_code=r.category_code,
        description=r.description,
        demand_type=r.demand_type,
        priority=r.priority,
        location=Location(**loc) if loc else None,
        address=r.address,
        area_code=r.area_code,
        reported_at=r.reported_at,
        received_at=r.received_at,
        reporter=ReporterRef.model_validate(r.reporter_view),
        unit_code=r.unit_code,
        co_unit_codes=tuple(r.co_unit_codes or ()),
        grid_code=r.grid_code,
        sla_policy_key=r.sla_policy_key,
        dispatched_at=r.dispatched_at,
        version=r.version,
    )


async def get_ticket(session: AsyncSession, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None:
    stmt = select(ticket).where(ticket.c.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _row_to_ticket(row) if row else None


async def find_ticket(session: AsyncSession, tenant: str, ref: str) -> Ticket | None:
    """By id or by 工单编号."""
    try:
        cond = ticket.c.id == uuid.UUID(ref)
    except ValueError:
        cond = ticket.c.ticket_no == ref
    row = (await session.execute(select(ticket).where(cond, ticket.c.tenant == tenant))).first()
    return _row_to_ticket(row) if row else None


async def get_query_code_hash(session: AsyncSession, ticket_id: uuid.UUID) -> str | None:
    return (
        await session.execute(select(ticket.c.query_code_hash).where(ticket.c.id == ticket_id))
    ).scalar_one_or_none()


async def history(session: AsyncSession, ticket_id: uuid.UUID) -> list[Any]:
    rows = await session.execute(
        select(ticket_history).where(ticket_history.c.ticket_id == ticket_id).order_by(ticket_history.c.id)
    )
    return list(rows.all())


async def get_idempotent(session: AsyncSession, tenant: str, key: str) -> Any | None:
    return (
        await session.execute(select(idempotency).where(idempotency.c.tenant == tenant, idempotency.c.key == key))
    ).first()


async def put_idempotent(
    session: AsyncSession, tenant: str, key: str, request_hash: str, status_code: int, response: dict[str, Any]
) -> None:
    await session.execute(
        idempotency.insert().values(
            tenant=tenant, key=key, request_hash=request_hash, status_code=status_code, response=response
        )
    )
