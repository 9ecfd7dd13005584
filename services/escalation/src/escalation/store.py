"""escalation's tables (schema ``escalation``): clocks with their next due time, policies, calendar overrides."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import asyncpg
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Interval,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_contracts.envelope import Envelope
from gridline_contracts.topics import topic_for
from gridline_messaging.outbox import channel
from gridline_messaging.tables import make_inbox_table, make_outbox_table

from . import firing
from .domain import Clock
from .policy import SlaPolicy, SlaRule
from .rankings import UnitCounts
from .supervision import Supervision

SCHEMA = "escalation"
metadata: MetaData = service_metadata(SCHEMA)

# One row per clock, every field of the domain Clock as a column: the timer reads and writes
# thousands of rows a second, and typed columns cost far less than re-validating a JSON document.
clock = Table(
    "clock",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("kind", Text, primary_key=True),  # sign | handle
    Column("round", Integer, primary_key=True),  # 0, then +1 per re-dispatch, rejected reply or 重办
    Column("ticket_no", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("grid_code", Text),
    Column("policy_key", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("requested_policy_key", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("warn_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("due_source", Text, nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("state", Text, nullable=False),
    Column("colour", Text, nullable=False),
    Column("warned", Boolean, nullable=False),
    Column("breached", Boolean, nullable=False),
    Column("next_step", Integer, nullable=False),
    Column("repeat_no", Integer, nullable=False),
    Column("next_step_at", DateTime(timezone=True)),
    Column("level", Text),
    Column("paused_at", DateTime(timezone=True)),
    Column("paused_for", Interval, nullable=False),
    Column("held_after_warn", Interval, nullable=False),
    Column("held_after_breach", Interval, nullable=False),
    Column("extension_no", Integer, nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("calendar_gap", Date),
    Column("stop_reason", Text),  # signed, replied, closed, returned … (feeds the rates)
    # The durable timer: the next moment tick() has something to do; NULL when nothing is pending.
    Column("next_due_at", DateTime(timezone=True)),
    # How long the clock's plan is (clock_plan) and how much of it has fired: the timer fires plans
    # set-based in SQL; a clock past its plan's end is ticked in Python.
    Column("plan_len", Integer, nullable=False, server_default="0"),
    Column("plan_pos", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# What a clock will fire and when (firing.encode of domain.schedule), ≈ 1 KB: written when the clock
# is armed or changed, read by every firing, never rewritten by one. On the clock row it made each
# firing's new row version 4× wider (PostgreSQL copies the whole row on UPDATE; a 1 KB value stays
# inline, below the TOAST threshold). No row for a clock with an empty plan.
clock_plan = Table(
    "clock_plan",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("plan", JSONB, nullable=False),
)
# The two timer paths each have their own partial index on the due time.
Index("ix_clock_plan_due", clock.c.next_due_at, postgresql_where=text("plan_pos < plan_len"))
Index(
    "ix_clock_tick_due",
    clock.c.next_due_at,
    postgresql_where=text("next_due_at IS NOT NULL AND plan_pos >= plan_len"),
)
Index("ix_clock_board", clock.c.tenant, clock.c.colour, clock.c.due_at, postgresql_where=text("state <> 'stopped'"))
# 超期未结 per tenant for the gauge: a short index scan, not a scan of every clock (a long scan held
# back vacuum's horizon, and the timer's claims then walked the burst's dead index entries).
Index(
    "ix_clock_overdue",
    clock.c.tenant,
    clock.c.due_at,
    postgresql_where=text("kind = 'handle' AND state <> 'stopped'"),
)

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

# 回访 results, for 满意率 and 解决率: one row per callback, attributed to the unit that handled it.
callback = Table(
    "callback",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("satisfaction", Text, nullable=False),
    Column("resolved", Boolean),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_callback_tenant_at", callback.c.tenant, callback.c.at)

supervision = Table(
    "supervision",
    metadata,
    Column("id", Uuid, primary_key=True),  # derived from the ladder step occurrence: one record per step
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid, nullable=False),
    Column("ticket_no", Text, nullable=False),
    Column("unit_code", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("step_code", Text, nullable=False),
    Column("recipients", ARRAY(Text), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("verified_by", Text),
    Column("verification", Text),
    # The record's durable timers (deadline_store): supervision.opened is published once, then
    # supervision.overdue once if the report-back deadline passes before 销号.
    Column("announced_at", DateTime(timezone=True)),
    Column("overdue_at", DateTime(timezone=True)),
)
Index("ix_supervision_open", supervision.c.tenant, supervision.c.due_at, postgresql_where=text("closed_at IS NULL"))
Index("ix_supervision_unannounced", supervision.c.opened_at, postgresql_where=text("announced_at IS NULL"))
Index(
    "ix_supervision_overdue_due",
    supervision.c.due_at,
    postgresql_where=text("closed_at IS NULL AND overdue_at IS NULL"),
)

# Platform review clocks (review.ReviewClock): 退单, 延期 and reply reviews, timed against the reviewer.
review_clock = Table(
    "review_clock",
    metadata,
    Column("id", Uuid, primary_key=True),  # derived from (ticket, review, requested_at): one per request
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid, nullable=False),
    Column("ticket_no", Text, nullable=False),
    Column("unit_code", Text),
    Column("review", Text, nullable=False),  # return | extension | reply
    Column("policy_key", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("time_limit", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("warn_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("escalate_at", DateTime(timezone=True), nullable=False),
    Column("stage", Integer, nullable=False),  # milestones fired: 1 warned, 2 breached, 3 escalated
    Column("stopped_at", DateTime(timezone=True)),
    Column("stop_reason", Text),
    Column("next_due_at", DateTime(timezone=True)),  # the durable timer; NULL once nothing is pending
)
Index("ix_review_clock_due", review_clock.c.next_due_at, postgresql_where=text("next_due_at IS NOT NULL"))
Index("ix_review_clock_ticket", review_clock.c.ticket_id)

# A tenant's working-hour windows, e.g. [["09:00", "12:00"], ["13:30", "17:30"]]; absent: the default.
working_hours = Table(
    "working_hours",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("windows", JSONB, nullable=False),
)

# escalation's own policy table (policy.SlaRule), versioned: the newest version of a key counts.
sla_rule = Table(
    "sla_rule",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("category_code", Text, primary_key=True),  # or *
    Column("priority", Text, primary_key=True),  # or *
    Column("demand_type", Text, primary_key=True),  # or *
    Column("version", Integer, primary_key=True),
    Column("policy_key", Text),  # None: the rule is withdrawn
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# What escalation keeps of a received report besides its place: the demand type (for sla_rule).
ticket_intake = Table(
    "ticket_intake",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("demand_type", Text),
)

# 包抓/包保: which sponsor unit answers for an area (a 社区's 12-digit code, a 街道's 9 digits, or one
# grid's code); a ticket belongs to the sponsor of the longest area code its grid code starts with.
sponsor_area = Table(
    "sponsor_area",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("area_code", Text, primary_key=True),
    Column("sponsor_code", Text, nullable=False),
    Column("sponsor_name", Text, nullable=False, server_default=""),
)

# One row per received report that has a place (repeat.place_key), for the repeat-point list.
place_report = Table(
    "place_report",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("ticket_no", Text, nullable=False),
    Column("place_key", Text, nullable=False),
    Column("category_code", Text, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("address", Text),
    Column("grid_code", Text),  # from the dispatch, when there is one
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("ix_place_report_key", place_report.c.tenant, place_report.c.received_at, place_report.c.place_key)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)

CLOCK_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Clock))
_SELECT_CLOCK = [clock.c[f] for f in CLOCK_FIELDS]


Plan = list[dict[str, Any]]  # firing.encode(domain.schedule(clock, …))


def clock_values(c: Clock, plan: Plan) -> dict[str, Any]:
    values = {f: getattr(c, f) for f in CLOCK_FIELDS}
    values["colour"] = c.colour
    values.update(plan_len=len(plan), plan_pos=0)
    return values


async def _save_plan(session: AsyncSession, c: Clock, plan: Plan) -> None:
    key = {"ticket_id": c.ticket_id, "kind": c.kind, "round": c.round}
    if plan:
        stmt = insert(clock_plan).values(**key, plan=plan)
        await session.execute(stmt.on_conflict_do_update(index_elements=list(key), set_={"plan": plan}))
    else:
        await session.execute(clock_plan.delete().where(*(clock_plan.c[k] == v for k, v in key.items())))


def to_clock(row: Mapping[Any, Any]) -> Clock:
    return Clock(**{f: row[f] for f in CLOCK_FIELDS})


async def insert_clock(session: AsyncSession, c: Clock, plan: Plan) -> bool:
    """False if this (ticket, kind, round) already has a clock. ``plan`` must be the clock's own."""
    stmt = insert(clock).values(**clock_values(c, plan)).on_conflict_do_nothing()
    if not (await session.execute(stmt)).rowcount:  # type: ignore[attr-defined]
        return False
    await _save_plan(session, c, plan)
    return True


async def save_clock(session: AsyncSession, c: Clock, plan: Plan) -> None:
    """Every change of a clock replaces its plan (a stale plan would fire the old schedule)."""
    await session.execute(
        clock.update()
        .where(clock.c.ticket_id == c.ticket_id, clock.c.kind == c.kind, clock.c.round == c.round)
        .values(**clock_values(c, plan), updated_at=func.now())
    )
    await _save_plan(session, c, plan)


async def get_clock(session: AsyncSession, ticket_id: uuid.UUID, kind: str = "handle") -> Clock | None:
    """The ticket's newest clock of this kind."""
    row = (
        await session.execute(
            select(*_SELECT_CLOCK)
            .where(clock.c.ticket_id == ticket_id, clock.c.kind == kind)
            .order_by(clock.c.round.desc())
            .limit(1)
        )
    ).first()
    return to_clock(row._mapping) if row else None


async def ticket_clocks(session: AsyncSession, ticket_id: uuid.UUID, *, lock: bool = False) -> list[Clock]:
    """Every clock the ticket ever had, oldest round first; ``lock`` holds them for this transaction."""
    stmt = select(*_SELECT_CLOCK).where(clock.c.ticket_id == ticket_id).order_by(clock.c.round, clock.c.kind)
    if lock:
        stmt = stmt.with_for_update()
    return [to_clock(r._mapping) for r in (await session.execute(stmt)).all()]


async def _driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction (for bulk work)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter opens the transaction lazily, on its first statement: without
        # this, the claim's row locks would end with the SELECT and replicas would fire twice.
        await conn.execute(text("SELECT 1"))
    assert driver.is_in_transaction()
    return driver


_T = f"{SCHEMA}.clock"
# The Python path: clocks due with nothing left in their plan (calendar-gap wake-ups, plans cut at
# PLAN_MAX, rows from before plans existed).
_CLAIM = (
    f"SELECT {', '.join(CLOCK_FIELDS)} FROM {_T} WHERE next_due_at <= $1 AND plan_pos >= plan_len "
    "ORDER BY next_due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)
# What tick() may change (and the colour it implies): the timer's bulk update writes only these.
_TICK_TYPES = {
    "warned": "bool",
    "breached": "bool",
    "next_step": "int",
    "repeat_no": "int",
    "next_step_at": "timestamptz",
    "level": "text",
    "calendar_gap": "date",
    "next_due_at": "timestamptz",
    "colour": "text",
}
_SAVE_TICKED = (
    f"UPDATE {_T} AS c SET "
    + ", ".join(f"{f} = u.{f}" for f in _TICK_TYPES)
    + ", plan_len = u.plan_len, plan_pos = 0"
    + ", updated_at = now() FROM unnest($1::uuid[], $2::text[], $3::int[], "
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TICK_TYPES.values(), start=4))
    + f", ${len(_TICK_TYPES) + 4}::int[]"
    + f") AS u(ticket_id, kind, round, {', '.join(_TICK_TYPES)}, plan_len) "
    "WHERE c.ticket_id = u.ticket_id AND c.kind = u.kind AND c.round = u.round"
)
_P = f"{SCHEMA}.clock_plan"
# The new plans of ticked clocks: replaced, or removed where a clock has nothing planned.
_SAVE_PLANS = (
    "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::jsonb[])"
    " AS u(ticket_id, kind, round, plan)),"
    f" del AS (DELETE FROM {_P} p USING u WHERE u.plan IS NULL"
    " AND p.ticket_id = u.ticket_id AND p.kind = u.kind AND p.round = u.round)"
    f" INSERT INTO {_P} (ticket_id, kind, round, plan) SELECT * FROM u WHERE plan IS NOT NULL"
    " ON CONFLICT (ticket_id, kind, round) DO UPDATE SET plan = excluded.plan"
)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Clock]:
    """Clocks due at ``now``, locked for this transaction; other timer replicas skip them."""
    rows = await (await _driver(session)).fetch(_CLAIM, now, limit)
    return [Clock(*r) for r in rows]


async def save_ticked(session: AsyncSession, clocks: list[tuple[Clock, Plan]]) -> None:
    """Write what tick() changed, and each clock's new plan, for many clocks in one statement."""
    if not clocks:
        return
    cs = [c for c, _ in clocks]
    columns: list[list[Any]] = [[c.ticket_id for c in cs], [c.kind for c in cs], [c.round for c in cs]]
    columns += [[c.colour if f == "colour" else getattr(c, f) for c in cs] for f in _TICK_TYPES]
    columns += [[len(p) for _, p in clocks]]
    driver = await _driver(session)
    await driver.execute(_SAVE_TICKED, *columns)
    plans = [json.dumps(p) if p else None for _, p in clocks]
    await driver.execute(_SAVE_PLANS, *columns[:3], plans)


_CLAIM_PLANNED = firing.claim_sql(SCHEMA)
_FIRE = firing.fire_sql(SCHEMA)


@dataclasses.dataclass(frozen=True)
class Fired:
    clocks: int
    events: int
    records: int
    dues: list[datetime]


async def fire_planned(session: AsyncSession, now: datetime, limit: int) -> Fired:
    """Fire the due instants of up to ``limit`` clocks' plans, set-based (see ``firing``)."""
    driver = await _driver(session)
    claimed = await driver.fetchrow(_CLAIM_PLANNED, now, limit)
    assert claimed is not None
    if not claimed["ids"]:
        return Fired(0, 0, 0, [])
    # A batch of thousands sorts and materialises a few MB: keep it in memory, not in temp files.
    # JIT compiling costs seconds here: the estimate of the jsonb expansions is far too high.
    await driver.execute("SET LOCAL work_mem = '64MB'; SET LOCAL jit = off")
    # A second statement, so its snapshot is taken after the claim's locks (see firing).
    row = await driver.fetchrow(_FIRE, now, now.isoformat(), claimed["ids"], claimed["kinds"], claimed["rounds"])
    assert row is not None
    fired = Fired(row["clocks"], row["events"], row["records"], list(claimed["dues"]))
    if fired.events:
        await driver.execute("SELECT pg_notify($1, '')", channel(SCHEMA))
    return fired


async def add_outbox_bulk(session: AsyncSession, envelopes: list[Envelope[Any]]) -> int:
    """``gridline_messaging.outbox.add`` for thousands of events: the same rows, in the caller's
    transaction, written with one COPY instead of multi-row INSERTs (the timer's burst path).

    REVIEW: belongs in gridline_messaging.outbox (lead's library); kept here until it moves.
    """
    if not envelopes:
        return 0
    topics: dict[type[Any], str] = {}
    rows = []
    for env in envelopes:
        kind = type(env.data)
        topic = topics.get(kind)
        if topic is None:
            topic = topics[kind] = topic_for(kind).name
        headers = json.dumps([[k, v.decode()] for k, v in env.headers()], ensure_ascii=False)
        rows.append((env.id, topic, env.subject, headers, env.body()))
    driver = await _driver(session)
    await driver.copy_records_to_table(
        outbox.name, schema_name=SCHEMA, columns=["event_id", "topic", "key", "headers", "payload"], records=rows
    )
    await driver.execute("SELECT pg_notify($1, '')", channel(SCHEMA))
    return len(rows)


async def board(session: AsyncSession, tenant: str, colour: str | None, limit: int) -> list[Clock]:
    stmt = select(*_SELECT_CLOCK).where(clock.c.tenant == tenant, clock.c.state != "stopped")
    if colour:
        stmt = stmt.where(clock.c.colour == colour)
    rows = (await session.execute(stmt.order_by(clock.c.due_at).limit(limit))).all()
    return [to_clock(r._mapping) for r in rows]


async def tenant_policies(session: AsyncSession, tenant: str) -> dict[str, SlaPolicy]:
    """The newest version of each tenant-defined policy."""
    rows = (
        await session.execute(
            select(policy.c.key, policy.c.data)
            .where(policy.c.tenant == tenant)
            .order_by(policy.c.key, policy.c.version.desc())
            .ext(distinct_on(policy.c.key))
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


async def add_policy_version(session: AsyncSession, tenant: str, p: SlaPolicy) -> SlaPolicy:
    """Save ``p`` as the next version of its key for this tenant (versions are never edited).

    Two admins saving the same key at the same moment collide on the primary key; the loser's
    transaction fails and the API answers 409.
    """
    latest = await session.scalar(
        select(func.max(policy.c.version)).where(policy.c.tenant == tenant, policy.c.key == p.key)
    )
    saved = dataclasses.replace(p, version=(latest or 0) + 1)
    await session.execute(insert(policy).values(tenant=tenant, key=p.key, version=saved.version, data=saved.to_dict()))
    return saved


async def policy_history(session: AsyncSession, tenant: str, key: str) -> list[SlaPolicy]:
    rows = (
        await session.execute(
            select(policy.c.data).where(policy.c.tenant == tenant, policy.c.key == key).order_by(policy.c.version)
        )
    ).all()
    return [SlaPolicy.from_dict(r.data) for r in rows]


async def set_override(session: AsyncSession, tenant: str, day: date, is_workday: bool, note: str) -> None:
    stmt = insert(calendar_override).values(tenant=tenant, day=day, is_workday=is_workday, note=note)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["tenant", "day"], set_={"is_workday": is_workday, "note": note})
    )


async def delete_override(session: AsyncSession, tenant: str, day: date) -> bool:
    result = await session.execute(
        calendar_override.delete().where(calendar_override.c.tenant == tenant, calendar_override.c.day == day)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def record_callback(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    tenant: str,
    ticket_id: uuid.UUID,
    unit_code: str,
    satisfaction: str,
    resolved: bool | None,
    at: datetime,
) -> None:
    stmt = insert(callback).values(
        event_id=event_id,
        tenant=tenant,
        ticket_id=ticket_id,
        unit_code=unit_code,
        satisfaction=satisfaction,
        resolved=resolved,
        at=at,
    )
    await session.execute(stmt.on_conflict_do_nothing())


_CLOCKS_BY = """
SELECT {key} AS unit_code,
  count(*) FILTER (WHERE kind = 'sign' AND started_at >= :s AND started_at < :e) AS sign_armed,
  count(*) FILTER (WHERE kind = 'sign' AND started_at >= :s AND started_at < :e
                   AND stop_reason = 'signed' AND stopped_at <= due_at) AS sign_on_time,
  count(*) FILTER (WHERE kind = 'sign' AND started_at >= :s AND started_at < :e
                   AND stop_reason IN ('signed', 'replied')) AS sign_responded,
  count(*) FILTER (WHERE kind = 'handle' AND started_at >= :s AND started_at < :e) AS handle_armed,
  count(*) FILTER (WHERE kind = 'handle' AND stop_reason = 'replied' AND stopped_at >= :s AND stopped_at < :e)
    AS replied,
  count(*) FILTER (WHERE kind = 'handle' AND stop_reason = 'replied' AND stopped_at >= :s AND stopped_at < :e
                   AND stopped_at <= due_at) AS replied_on_time,
  count(*) FILTER (WHERE kind = 'handle' AND stop_reason = 'returned' AND stopped_at >= :s AND stopped_at < :e)
    AS returned,
  count(*) FILTER (WHERE kind = 'handle' AND round > 0 AND started_at >= :s AND started_at < :e
                   AND NOT EXISTS (SELECT 1 FROM {schema}.clock g WHERE g.ticket_id = c.ticket_id
                                   AND g.kind = 'sign' AND g.round = c.round)) AS redone,
  count(*) FILTER (WHERE kind = 'handle' AND started_at >= :s AND started_at < :e AND extension_no > 0)
    AS extended,
  count(*) FILTER (WHERE kind = 'handle' AND state <> 'stopped' AND due_at < :now) AS overdue_open,
  coalesce(sum(extract(epoch FROM stopped_at - started_at) / 3600.0)
    FILTER (WHERE kind = 'handle' AND stop_reason = 'replied' AND stopped_at >= :s AND stopped_at < :e), 0)
    AS handling_hours_sum
FROM {schema}.clock c
WHERE tenant = :tenant AND (started_at < :e AND (stopped_at IS NULL OR stopped_at >= :s))
GROUP BY 1
"""
_CALLBACKS_BY = """
SELECT {key} AS unit_code,
  count(*) FILTER (WHERE satisfaction <> 'unreachable') AS callbacks_reached,
  count(*) FILTER (WHERE satisfaction IN ('satisfied', 'basically_satisfied')) AS satisfied,
  count(*) FILTER (WHERE resolved IS NOT NULL) AS resolved_known,
  count(*) FILTER (WHERE resolved) AS resolved
FROM {schema}.callback c
WHERE tenant = :tenant AND at >= :s AND at < :e
GROUP BY 1
"""
# The grid of a callback's ticket: from its newest handling clock.
_GRID_OF_TICKET = (
    "(SELECT h.grid_code FROM {schema}.clock h WHERE h.ticket_id = c.ticket_id AND h.kind = 'handle' "
    "ORDER BY h.round DESC LIMIT 1)"
)
_SPONSOR_OF = (
    "(SELECT sp.sponsor_code FROM {schema}.sponsor_area sp WHERE sp.tenant = c.tenant "
    "AND {grid} LIKE sp.area_code || '%' ORDER BY length(sp.area_code) DESC LIMIT 1)"
)


def _level_sql(level: str) -> tuple[str, str]:
    """The statements counting clocks and callbacks per ranking level.

    街道 and 社区 come from the grid code, which extends the administrative code (domain §3.1: 6
    digits county + 3 街道 + 3 社区 = 12); 包抓 sponsors from ``sponsor_area``. Clocks without a
    grid code (or outside every sponsored area) are not ranked at those levels.
    """
    grid_clock, grid_callback = "c.grid_code", _GRID_OF_TICKET.format(schema=SCHEMA)
    keys = {
        "unit": ("c.unit_code", "c.unit_code"),
        "street": (f"left({grid_clock}, 9)", f"left({grid_callback}, 9)"),
        "community": (f"left({grid_clock}, 12)", f"left({grid_callback}, 12)"),
        "sponsor": (
            _SPONSOR_OF.format(schema=SCHEMA, grid=grid_clock),
            _SPONSOR_OF.format(schema=SCHEMA, grid=grid_callback),
        ),
    }
    clock_key, callback_key = keys[level]
    if level in ("street", "community"):
        # Only codes long enough to hold the level (a 9-digit 街道 grid has no 社区).
        n = 9 if level == "street" else 12
        clock_key = f"CASE WHEN length({grid_clock}) >= {n} THEN {clock_key} END"
        callback_key = f"CASE WHEN length({grid_callback}) >= {n} THEN {callback_key} END"
    return (
        _CLOCKS_BY.format(key=clock_key, schema=SCHEMA),
        _CALLBACKS_BY.format(key=callback_key, schema=SCHEMA),
    )


LEVELS = ("unit", "street", "community", "sponsor")
_LEVEL_SQL = {level: tuple(text(q) for q in _level_sql(level)) for level in LEVELS}


async def unit_counts(
    session: AsyncSession, tenant: str, start: datetime, end: datetime, now: datetime, level: str = "unit"
) -> list[UnitCounts]:
    """What the rates of every unit (or 街道, 社区, 包抓 sponsor: ``level``) are computed from, for
    clocks and callbacks in ``[start, end)``; ``UnitCounts.unit_code`` holds that level's code."""
    clocks_sql, callbacks_sql = _LEVEL_SQL[level]
    params = {"tenant": tenant, "s": start, "e": end, "now": now}
    by_unit: dict[str, dict[str, Any]] = {}
    for r in (await session.execute(clocks_sql, params)).mappings():
        if r["unit_code"] is not None:  # no grid code, or outside every sponsored area
            by_unit[r["unit_code"]] = {**r, "handling_hours_sum": float(r["handling_hours_sum"])}
    for r in (await session.execute(callbacks_sql, params)).mappings():
        if r["unit_code"] is None:
            continue
        by_unit.setdefault(r["unit_code"], {"unit_code": r["unit_code"]}).update(r)
    return [UnitCounts(**v) for _, v in sorted(by_unit.items())]


_ACTIVE_TENANTS = text(
    f"""
WITH RECURSIVE t AS (
  (SELECT tenant FROM {SCHEMA}.clock WHERE state <> 'stopped' ORDER BY tenant LIMIT 1)
  UNION ALL
  SELECT (SELECT c.tenant FROM {SCHEMA}.clock c WHERE c.state <> 'stopped' AND c.tenant > t.tenant
          ORDER BY c.tenant LIMIT 1)
  FROM t WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL
"""
)


async def active_tenants(session: AsyncSession) -> list[str]:
    """Tenants with open clocks: a skip scan of ix_clock_board (one probe per tenant, not per clock)."""
    return [r[0] for r in (await session.execute(_ACTIVE_TENANTS)).all()]


_OVERDUE = text(
    # Literals, not parameters: the planner must see the ix_clock_overdue predicate to use it.
    f"SELECT tenant, count(*) FROM {SCHEMA}.clock WHERE kind = 'handle' AND state <> 'stopped' "
    "AND due_at < :now GROUP BY tenant"
)


async def overdue_by_tenant(session: AsyncSession, now: datetime) -> dict[str, int]:
    """超期未结 per tenant: open handling clocks past their deadline (uses ix_clock_overdue)."""
    rows = (await session.execute(_OVERDUE, {"now": now})).all()
    return {r[0]: int(r[1]) for r in rows}


async def open_clocks(session: AsyncSession) -> list[tuple[str, str, str, str, int]]:
    """(tenant, kind, colour, level, count) of the clocks not stopped (uses ix_clock_board)."""
    level = func.coalesce(clock.c.level, "none")
    rows = (
        await session.execute(
            select(clock.c.tenant, clock.c.kind, clock.c.colour, level, func.count())
            .where(clock.c.state != "stopped")
            .group_by(clock.c.tenant, clock.c.kind, clock.c.colour, level)
        )
    ).all()
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


_SUP_FIELDS = tuple(f.name for f in dataclasses.fields(Supervision))


def _to_supervision(row: Mapping[Any, Any]) -> Supervision:
    values = {f: row[f] for f in _SUP_FIELDS}
    values["recipients"] = tuple(values["recipients"])
    return Supervision(**values)


async def add_supervisions(session: AsyncSession, records: list[Supervision]) -> None:
    """Insert opened records; a step that fired before (same derived id) opens nothing twice."""
    if records:
        rows = [{**{f: getattr(r, f) for f in _SUP_FIELDS}, "recipients": list(r.recipients)} for r in records]
        await session.execute(insert(supervision).on_conflict_do_nothing(), rows)


async def supervisions(
    session: AsyncSession, tenant: str, *, open_only: bool, limit: int, lock_id: uuid.UUID | None = None
) -> list[Supervision]:
    stmt = select(*[supervision.c[f] for f in _SUP_FIELDS]).where(supervision.c.tenant == tenant)
    if open_only:
        stmt = stmt.where(supervision.c.closed_at.is_(None))
    if lock_id is not None:
        stmt = stmt.where(supervision.c.id == lock_id).with_for_update()
    rows = (await session.execute(stmt.order_by(supervision.c.due_at).limit(limit))).mappings().all()
    return [_to_supervision(r) for r in rows]


async def save_supervision_closure(session: AsyncSession, s: Supervision) -> None:
    await session.execute(
        supervision.update()
        .where(supervision.c.id == s.id)
        .values(closed_at=s.closed_at, verified_by=s.verified_by, verification=s.verification)
    )


async def tenant_working_hours(session: AsyncSession, tenant: str) -> list[tuple[time, time]] | None:
    windows = await session.scalar(select(working_hours.c.windows).where(working_hours.c.tenant == tenant))
    if windows is None:
        return None
    return [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in windows]


async def set_working_hours(session: AsyncSession, tenant: str, windows: list[tuple[time, time]]) -> None:
    data = [[a.isoformat("minutes"), b.isoformat("minutes")] for a, b in windows]
    stmt = insert(working_hours).values(tenant=tenant, windows=data)
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant"], set_={"windows": data}))


async def record_place(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(place_report).values(**values).on_conflict_do_nothing())


async def set_place_grid(session: AsyncSession, ticket_id: uuid.UUID, grid_code: str | None) -> None:
    if grid_code is not None:
        await session.execute(
            place_report.update().where(place_report.c.ticket_id == ticket_id).values(grid_code=grid_code)
        )


_REPEAT_POINTS = text(
    f"""
SELECT place_key, count(*) AS reports,
  min(received_at) AS first_at, max(received_at) AS last_at,
  (array_agg(ticket_no ORDER BY received_at DESC))[1:20] AS ticket_nos,
  array_agg(DISTINCT category_code) AS categories,
  (array_agg(grid_code ORDER BY received_at DESC) FILTER (WHERE grid_code IS NOT NULL))[1] AS grid_code,
  avg(lat) AS lat, avg(lon) AS lon,
  (array_agg(address ORDER BY received_at DESC) FILTER (WHERE address IS NOT NULL))[1] AS address
FROM {SCHEMA}.place_report
WHERE tenant = :tenant AND received_at >= :s AND received_at < :e
GROUP BY place_key HAVING count(*) >= :n
ORDER BY reports DESC, last_at DESC
LIMIT :limit
"""
)


async def repeat_points(
    session: AsyncSession, tenant: str, start: datetime, end: datetime, min_reports: int, limit: int
) -> list[dict[str, Any]]:
    params = {"tenant": tenant, "s": start, "e": end, "n": min_reports, "limit": limit}
    return [dict(r) for r in (await session.execute(_REPEAT_POINTS, params)).mappings()]


async def set_sponsor_area(session: AsyncSession, tenant: str, area_code: str, sponsor_code: str, name: str) -> None:
    stmt = insert(sponsor_area).values(tenant=tenant, area_code=area_code, sponsor_code=sponsor_code, sponsor_name=name)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "area_code"], set_={"sponsor_code": sponsor_code, "sponsor_name": name}
        )
    )


async def delete_sponsor_area(session: AsyncSession, tenant: str, area_code: str) -> bool:
    result = await session.execute(
        sponsor_area.delete().where(sponsor_area.c.tenant == tenant, sponsor_area.c.area_code == area_code)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sponsor_areas(session: AsyncSession, tenant: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(sponsor_area.c.area_code, sponsor_area.c.sponsor_code, sponsor_area.c.sponsor_name)
        .where(sponsor_area.c.tenant == tenant)
        .order_by(sponsor_area.c.area_code)
    )
    return [dict(r) for r in rows.mappings()]


async def sla_rules(session: AsyncSession, tenant: str, *, history: bool = False) -> list[SlaRule]:
    """The newest version of each rule key (withdrawn ones included, policy_key None), or all versions."""
    t = sla_rule.c
    stmt = select(t.category_code, t.priority, t.demand_type, t.policy_key, t.version).where(t.tenant == tenant)
    if history:
        stmt = stmt.order_by(t.category_code, t.priority, t.demand_type, t.version)
    else:
        stmt = stmt.order_by(t.category_code, t.priority, t.demand_type, t.version.desc()).ext(
            distinct_on(t.category_code, t.priority, t.demand_type)
        )
    return [SlaRule(**r) for r in (await session.execute(stmt)).mappings()]


async def add_sla_rule(session: AsyncSession, tenant: str, rule: SlaRule) -> SlaRule:
    """Save as the next version of its key (two admins racing collide on the primary key → 409)."""
    t = sla_rule.c
    latest = await session.scalar(
        select(func.max(t.version)).where(
            t.tenant == tenant,
            t.category_code == rule.category_code,
            t.priority == rule.priority,
            t.demand_type == rule.demand_type,
        )
    )
    saved = dataclasses.replace(rule, version=(latest or 0) + 1)
    await session.execute(insert(sla_rule).values(tenant=tenant, **dataclasses.asdict(saved)))
    return saved


async def record_demand_type(session: AsyncSession, ticket_id: uuid.UUID, tenant: str, demand_type: str | None) -> None:
    stmt = insert(ticket_intake).values(ticket_id=ticket_id, tenant=tenant, demand_type=demand_type)
    await session.execute(stmt.on_conflict_do_nothing())


async def demand_type_of(session: AsyncSession, ticket_id: uuid.UUID) -> str | None:
    value: str | None = await session.scalar(
        select(ticket_intake.c.demand_type).where(ticket_intake.c.ticket_id == ticket_id)
    )
    return value
