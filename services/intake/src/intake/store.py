"""intake's tables (schema ``intake``) and the queries on them. Never commits: the edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import ReporterRef
from gridline_contracts.topics import topic_for
from gridline_messaging.outbox import add as outbox_add
from gridline_messaging.outbox import channel as outbox_channel
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
    Column("platform_due_at", DateTime(timezone=True)),
    Column("accepted_at", DateTime(timezone=True)),
    Column("due_at", DateTime(timezone=True)),
    Column("sla_colour", Text, nullable=False, server_default="green"),
    Column("return_refused", Boolean, nullable=False, server_default=text("false")),
    Column("pending_extension_days", Integer),
    Column("extension_count", Integer, nullable=False, server_default="0"),
    Column("redo_count", Integer, nullable=False, server_default="0"),
    Column("last_satisfaction", Text),
    Column("last_resolved", Boolean),
    Column("closed_at", DateTime(timezone=True)),
    Column("merge_parent_id", Uuid),
    # Where the order came from when an integration pushed it (12345 hotline, Open311 client):
    # (source, external_id) is unique, so the same order pushed twice is one ticket.
    Column("source", Text),
    Column("external_id", Text),
    Column("source_hash", Text),  # hash of the last accepted push, to tell a repeat from a change
    Column("site", JSONB),  # InspectionSite of a campaign finding
    Column("last_reply", Text),  # the unit's latest 办理结果: what the citizen is told once approved
)
Index("ix_ticket_tenant_status", ticket.c.tenant, ticket.c.status)
# The worklist: one unit's tickets, newest first, with a stable keyset cursor (received_at, id).
Index("ix_ticket_worklist", ticket.c.tenant, ticket.c.unit_code, ticket.c.received_at.desc(), ticket.c.id.desc())
Index(
    "ux_ticket_source_external",
    ticket.c.tenant,
    ticket.c.source,
    ticket.c.external_id,
    unique=True,
    postgresql_where=ticket.c.external_id.isnot(None),
)

reporter_contact = Table(
    "reporter_contact",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("phone_sealed", Text),  # AES-GCM under PII_KEY
    Column("phone_hash", Text),  # keyed hash: same-caller lookups without decrypting
    Column("openid_sealed", Text),
    Column("name_sealed", Text),  # AES-GCM under PII_KEY
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
    Column("actor_role", Text),
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

# Nonces of signed integration requests: a nonce seen inside the freshness window is a replay.
request_nonce = Table(
    "request_nonce",
    metadata,
    Column("integration", Text, primary_key=True),
    Column("nonce", Text, primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
)

# Fixed-window counters for rate limits (per integration, per phone hash).
rate_counter = Table(
    "rate_counter",
    metadata,
    Column("key", Text, primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("count", Integer, nullable=False),
)

# Every view of contact data in clear: who, when, why (domain §8).
pii_access = Table(
    "pii_access",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid, nullable=False, index=True),
    Column("actor", Text, nullable=False),
    Column("actor_role", Text, nullable=False),
    Column("unit_code", Text),
    Column("reason", Text, nullable=False),
    Column("fields", JSONB, nullable=False),
)

attachment = Table(
    "attachment",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid, index=True),
    Column("purpose", Text, nullable=False),  # report | reply
    # Null until the bytes are stored (a 12345 attachment URL still to be fetched, or that failed).
    Column("storage_key", Text),
    Column("content_type", Text),
    Column("size", Integer),
    Column("sha256", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # 12345 attachment URLs are fetched after the order is saved (attachments.py): pending → stored,
    # or failed with a reason once retrying cannot help.
    Column("source_url", Text),
    Column("state", Text, nullable=False, server_default="stored"),  # pending | stored | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
)
Index(
    "ux_attachment_source_url",
    attachment.c.ticket_id,
    attachment.c.source_url,
    unique=True,
    postgresql_where=attachment.c.source_url.isnot(None),
)
Index("ix_attachment_due", attachment.c.next_attempt_at, postgresql_where=attachment.c.state == "pending")

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)

# The hot inserts as fixed statements with the row passed as parameters: `.values(**row)` builds a
# new statement and its cache key on every call, ~2 ms of CPU for the ticket's ~40 columns on the
# benchmark machine (docs/performance.md). Columns left out of a row get their server default.
_INSERT_CONTACT = reporter_contact.insert()
_INSERT_TICKET = ticket.insert()
_INSERT_HISTORY = ticket_history.insert()

# Fixed-window rate counters, any number of keys in one round trip (access.rate_limit_many).
COUNT_RATES = text(
    "INSERT INTO rate_counter (key, window_start, count)"
    " SELECT k, :start, 1 FROM unnest(CAST(:keys AS text[])) AS k"
    " ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counter.count + 1"
    " RETURNING key, count"
).bindparams(bindparam("start", type_=DateTime(timezone=True)))

# One event into the outbox and the relay's wake-up in one statement (gridline_messaging.outbox.add
# takes two round trips: an executemany INSERT, then SELECT pg_notify).
_OUTBOX_ONE = text(
    "WITH o AS (INSERT INTO outbox (event_id, topic, key, headers, payload)"
    " VALUES (:event_id, :topic, :key, :headers, :payload) RETURNING 1)"
    f" SELECT pg_notify('{outbox_channel(SCHEMA)}', '') FROM o"
).bindparams(
    bindparam("event_id", type_=Uuid),
    bindparam("headers", type_=JSONB),
    bindparam("payload", type_=LargeBinary),
)


async def add_events(session: AsyncSession, envelopes: list[Envelope[Any]]) -> None:
    """Queue events in the caller's transaction, as gridline_messaging.outbox.add does, in one
    statement when there is one event (a new report's ``ticket.received``)."""
    if len(envelopes) != 1:
        await outbox_add(session, outbox, envelopes)
        return
    await session.execute(_OUTBOX_ONE, _event_params(envelopes[0]))


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


def _contact_params(
    *,
    tenant: str,
    phone_sealed: str | None,
    phone_hash: str | None,
    openid_sealed: str | None,
    confidential: bool,
    name_sealed: str | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant": tenant,
        "phone_sealed": phone_sealed,
        "phone_hash": phone_hash,
        "openid_sealed": openid_sealed,
        "name_sealed": name_sealed,
        "confidential": int(confidential),
    }


async def insert_contact(
    session: AsyncSession,
    *,
    tenant: str,
    phone_sealed: str | None,
    phone_hash: str | None,
    openid_sealed: str | None,
    confidential: bool,
    name_sealed: str | None = None,
) -> uuid.UUID:
    row = _contact_params(
        tenant=tenant,
        phone_sealed=phone_sealed,
        phone_hash=phone_hash,
        openid_sealed=openid_sealed,
        confidential=confidential,
        name_sealed=name_sealed,
    )
    await session.execute(_INSERT_CONTACT, row)
    rid: uuid.UUID = row["id"]
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


LIFECYCLE_FIELDS = (
    "status",
    "unit_code",
    "co_unit_codes",
    "grid_code",
    "sla_policy_key",
    "dispatched_at",
    "version",
    "category_code",
    "description",
    "demand_type",
    "priority",
    "address",
    "area_code",
    "platform_due_at",
    "accepted_at",
    "due_at",
    "sla_colour",
    "return_refused",
    "pending_extension_days",
    "extension_count",
    "redo_count",
    "last_satisfaction",
    "last_resolved",
    "closed_at",
    "merge_parent_id",
    "last_reply",
)


def _values(t: Ticket) -> dict[str, Any]:
    v = {k: getattr(t, k) for k in LIFECYCLE_FIELDS}
    v["status"] = t.status.value
    v["co_unit_codes"] = list(t.co_unit_codes)
    return v


def _ticket_params(
    t: Ticket,
    *,
    reporter_id: uuid.UUID | None,
    query_code_hash: str,
    source: str | None = None,
    external_id: str | None = None,
    source_hash: str | None = None,
    site: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "site": site,
        "id": t.id,
        "tenant": t.tenant,
        "ticket_no": t.ticket_no,
        "channel": t.channel,
        "location": _location_json(t.location),
        "reported_at": t.reported_at,
        "received_at": t.received_at,
        "reporter_id": reporter_id,
        "reporter_view": t.reporter.model_dump(mode="json"),
        "query_code_hash": query_code_hash,
        "source": source,
        "external_id": external_id,
        "source_hash": source_hash,
        **_values(t),
    }


async def insert_ticket(
    session: AsyncSession,
    t: Ticket,
    *,
    reporter_id: uuid.UUID | None,
    query_code_hash: str,
    source: str | None = None,
    external_id: str | None = None,
    source_hash: str | None = None,
    site: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        _INSERT_TICKET,
        _ticket_params(
            t,
            reporter_id=reporter_id,
            query_code_hash=query_code_hash,
            source=source,
            external_id=external_id,
            source_hash=source_hash,
            site=site,
        ),
    )


# Every lifecycle change (dispatch recorded from routing's event, staff actions) writes the same
# columns: one fixed statement, compiled and cached once, instead of a new one per call.
_UPDATE_TICKET = (
    ticket.update()
    .where(ticket.c.id == bindparam("w_id", type_=Uuid), ticket.c.version == bindparam("w_version", type_=Integer))
    .values(updated_at=func.now(), **{k: bindparam(k, type_=ticket.c[k].type) for k in LIFECYCLE_FIELDS})
)


async def update_ticket(session: AsyncSession, t: Ticket, expected_version: int) -> None:
    res = await session.execute(_UPDATE_TICKET, {"w_id": t.id, "w_version": expected_version, **_values(t)})
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"ticket {t.id} changed concurrently")


def _history_params(
    ticket_id: uuid.UUID, entry: HistoryEntry, at: datetime, event_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "at": at,
        "action": entry.action,
        "from_status": entry.from_status.value if entry.from_status else None,
        "to_status": entry.to_status.value,
        "actor": entry.actor,
        "note": entry.note,
        "event_id": event_id,
        "actor_role": entry.actor_role,
    }


async def add_history(
    session: AsyncSession, ticket_id: uuid.UUID, entry: HistoryEntry, at: datetime, event_id: uuid.UUID | None = None
) -> None:
    await session.execute(_INSERT_HISTORY, _history_params(ticket_id, entry, at, event_id))


def _event_params(env: Envelope[Any]) -> dict[str, Any]:
    return {
        "event_id": env.id,
        "topic": topic_for(type(env.data)).name,
        "key": env.subject,
        "headers": [[k, v.decode()] for k, v in env.headers()],
        "payload": env.body(),
    }


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in row.items()}


def _insert_cte(table: Table, columns: list[str], prefix: str) -> Any:
    values = {c: bindparam(prefix + c, type_=table.c[c].type) for c in columns}
    return table.insert().values(values).returning(table.c[columns[0]]).cte(f"new_{table.name}")


def _admit_statement(with_contact: bool) -> Any:
    """Contact, ticket, history entry and the ``ticket.received`` outbox row, plus the relay's
    wake-up, in one statement: one round trip instead of five. intake has no foreign keys between
    these tables, so the order PostgreSQL runs the data-modifying CTEs in does not matter."""
    ctes = [
        _insert_cte(ticket, _TICKET_KEYS, "t_"),
        _insert_cte(ticket_history, _HISTORY_KEYS, "h_"),
    ]
    if with_contact:
        ctes.append(_insert_cte(reporter_contact, _CONTACT_KEYS, "c_"))
    event = _insert_cte(outbox, _EVENT_KEYS, "o_")
    return select(func.pg_notify(outbox_channel(SCHEMA), "")).select_from(event).add_cte(*ctes)


_CONTACT_KEYS = list(
    _contact_params(tenant="", phone_sealed=None, phone_hash=None, openid_sealed=None, confidential=False)
)
_HISTORY_KEYS = ["ticket_id", "at", "action", "from_status", "to_status", "actor", "note", "event_id", "actor_role"]
_TICKET_KEYS = [
    "id",
    "site",
    "tenant",
    "ticket_no",
    "channel",
    "location",
    "reported_at",
    "received_at",
    "reporter_id",
    "reporter_view",
    "query_code_hash",
    "source",
    "external_id",
    "source_hash",
    *LIFECYCLE_FIELDS,
]
_EVENT_KEYS = ["event_id", "topic", "key", "headers", "payload"]
_ADMIT = {True: _admit_statement(True), False: _admit_statement(False)}


async def insert_new_ticket(
    session: AsyncSession,
    t: Ticket,
    entry: HistoryEntry,
    envelopes: list[Envelope[Any]],
    *,
    at: datetime,
    contact: dict[str, Any] | None,
    query_code_hash: str,
    source: str | None = None,
    external_id: str | None = None,
    source_hash: str | None = None,
    site: dict[str, Any] | None = None,
) -> None:
    """A new ticket with its sealed contact, first history entry and events, in the caller's transaction."""
    c = _contact_params(tenant=t.tenant, **contact) if contact is not None else None
    row = _ticket_params(
        t,
        reporter_id=c["id"] if c else None,
        query_code_hash=query_code_hash,
        source=source,
        external_id=external_id,
        source_hash=source_hash,
        site=site,
    )
    history = _history_params(t.id, entry, at)
    params = {**_prefixed("t_", row), **_prefixed("h_", history)}
    if len(envelopes) != 1:  # not what receive() returns today; the general path keeps it correct
        if c is not None:
            await session.execute(_INSERT_CONTACT, c)
        await session.execute(_INSERT_TICKET, row)
        await session.execute(_INSERT_HISTORY, history)
        await add_events(session, envelopes)
        return
    if c is not None:
        params.update(_prefixed("c_", c))
    params.update(_prefixed("o_", _event_params(envelopes[0])))
    await session.execute(_ADMIT[c is not None], params)


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
        platform_due_at=r.platform_due_at,
        accepted_at=r.accepted_at,
        due_at=r.due_at,
        sla_colour=r.sla_colour,
        return_refused=r.return_refused,
        pending_extension_days=r.pending_extension_days,
        extension_count=r.extension_count,
        redo_count=r.redo_count,
        last_satisfaction=r.last_satisfaction,
        last_resolved=r.last_resolved,
        closed_at=r.closed_at,
        merge_parent_id=r.merge_parent_id,
        source=r.source,
        external_id=r.external_id,
        last_reply=r.last_reply,
    )


async def get_ticket(session: AsyncSession, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None:
    stmt = select(ticket).where(ticket.c.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _row_to_ticket(row) if row else None


async def find_ticket(session: AsyncSession, tenant: str, ref: str, *, for_update: bool = False) -> Ticket | None:
    """By id or by 工单编号, inside one tenant."""
    try:
        cond = ticket.c.id == uuid.UUID(ref)
    except ValueError:
        cond = ticket.c.ticket_no == ref
    stmt = select(ticket).where(cond, ticket.c.tenant == tenant)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _row_to_ticket(row) if row else None


async def find_by_source(
    session: AsyncSession, tenant: str, source: str, external_id: str, *, for_update: bool = False
) -> tuple[Ticket, str | None] | None:
    stmt = select(ticket).where(
        ticket.c.tenant == tenant, ticket.c.source == source, ticket.c.external_id == external_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return (_row_to_ticket(row), row.source_hash) if row else None


async def set_source_hash(session: AsyncSession, ticket_id: uuid.UUID, source_hash: str) -> None:
    await session.execute(ticket.update().where(ticket.c.id == ticket_id).values(source_hash=source_hash))


async def worklist(
    session: AsyncSession,
    tenant: str,
    *,
    unit_code: str | None,
    include_co_units: bool,
    statuses: list[str] | None,
    sla_colour: str | None,
    grid_code: str | None,
    category_code: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Any]:
    """Keyset pagination on (received_at, id) descending: stable while new tickets arrive."""
    cols = [
        ticket.c.id,
        ticket.c.ticket_no,
        ticket.c.status,
        ticket.c.category_code,
        ticket.c.priority,
        ticket.c.unit_code,
        ticket.c.grid_code,
        ticket.c.sla_colour,
        ticket.c.due_at,
        ticket.c.received_at,
    ]
    stmt = select(*cols).where(ticket.c.tenant == tenant)
    if unit_code is not None:
        own = ticket.c.unit_code == unit_code
        stmt = stmt.where(or_(own, ticket.c.co_unit_codes.contains([unit_code])) if include_co_units else own)
    if statuses:
        stmt = stmt.where(ticket.c.status.in_(statuses))
    if sla_colour:
        stmt = stmt.where(ticket.c.sla_colour == sla_colour)
    if grid_code:
        stmt = stmt.where(ticket.c.grid_code == grid_code)
    if category_code:
        stmt = stmt.where(ticket.c.category_code == category_code)
    if after is not None:
        stmt = stmt.where(tuple_(ticket.c.received_at, ticket.c.id) < tuple_(after[0], after[1]))
    stmt = stmt.order_by(ticket.c.received_at.desc(), ticket.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def public_feed(
    session: AsyncSession, tenant: str, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Any]:
    """Open tickets and results for the public: no 举报, no confidential reports, no merged children."""
    stmt = select(
        ticket.c.id,
        ticket.c.category_code,
        ticket.c.status,
        ticket.c.location,
        ticket.c.area_code,
        ticket.c.received_at,
        ticket.c.closed_at,
    ).where(
        ticket.c.tenant == tenant,
        ticket.c.demand_type.is_distinct_from("report"),
        ticket.c.reporter_view["confidential"].astext.is_distinct_from("true"),
        ticket.c.status.notin_(["merged", "rejected"]),
    )
    if after is not None:
        stmt = stmt.where(tuple_(ticket.c.received_at, ticket.c.id) < tuple_(after[0], after[1]))
    stmt = stmt.order_by(ticket.c.received_at.desc(), ticket.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def attachments(session: AsyncSession, ticket_id: uuid.UUID, *, purpose: str | None = None) -> list[Any]:
    stmt = select(attachment).where(attachment.c.ticket_id == ticket_id)
    if purpose:
        stmt = stmt.where(attachment.c.purpose == purpose)
    return list((await session.execute(stmt.order_by(attachment.c.created_at, attachment.c.id))).all())


async def get_contact(session: AsyncSession, ticket_id: uuid.UUID) -> Any | None:
    stmt = (
        select(reporter_contact)
        .join(ticket, ticket.c.reporter_id == reporter_contact.c.id)
        .where(ticket.c.id == ticket_id)
    )
    return (await session.execute(stmt)).first()


async def audit_contact_view(
    session: AsyncSession,
    *,
    tenant: str,
    ticket_id: uuid.UUID,
    actor: str,
    role: str,
    unit: str | None,
    reason: str,
    fields: list[str],
) -> None:
    await session.execute(
        pii_access.insert().values(
            tenant=tenant,
            ticket_id=ticket_id,
            actor=actor,
            actor_role=role,
            unit_code=unit,
            reason=reason,
            fields=fields,
        )
    )


async def contact_views(session: AsyncSession, ticket_id: uuid.UUID) -> list[Any]:
    rows = await session.execute(
        select(pii_access).where(pii_access.c.ticket_id == ticket_id).order_by(pii_access.c.id)
    )
    return list(rows.all())


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
