"""Durable timers of supervision records and review clocks (tables in ``store``; SQL here).

Both are claimed with ``FOR UPDATE SKIP LOCKED`` on a partial index of the due time, so several
escalation instances share the work and a row is never fired by two: the claim, the row's update
and the outbox events commit together (a crash before the commit fires nothing; after it the row
no longer matches the claim).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .review import ReviewClock
from .store import SCHEMA, clock, review_clock, supervision
from .supervision import Supervision

_REVIEW_FIELDS = tuple(f.name for f in dataclasses.fields(ReviewClock))
_SUP_FIELDS = tuple(f.name for f in dataclasses.fields(Supervision))


def _review_values(rc: ReviewClock) -> dict[str, Any]:
    return {**{f: getattr(rc, f) for f in _REVIEW_FIELDS}, "next_due_at": rc.next_due_at}


def _to_review(row: Any) -> ReviewClock:
    return ReviewClock(**{f: row[f] for f in _REVIEW_FIELDS})


async def insert_review(session: AsyncSession, rc: ReviewClock) -> bool:
    """False when this request already has its clock (a redelivery)."""
    stmt = insert(review_clock).values(**_review_values(rc)).on_conflict_do_nothing()
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def save_review(session: AsyncSession, rc: ReviewClock) -> None:
    values = _review_values(rc)
    del values["id"]
    await session.execute(review_clock.update().where(review_clock.c.id == rc.id).values(**values))


async def ticket_reviews(
    session: AsyncSession, ticket_id: uuid.UUID, *, open_only: bool = False, lock: bool = False
) -> list[ReviewClock]:
    """A ticket's review clocks, oldest request first; ``lock`` holds them for this transaction."""
    stmt = select(*[review_clock.c[f] for f in _REVIEW_FIELDS]).where(review_clock.c.ticket_id == ticket_id)
    if open_only:
        stmt = stmt.where(review_clock.c.stopped_at.is_(None))
    stmt = stmt.order_by(review_clock.c.requested_at)
    if lock:
        stmt = stmt.with_for_update()
    return [_to_review(r) for r in (await session.execute(stmt)).mappings()]


async def open_reviews(session: AsyncSession, tenant: str, limit: int) -> list[ReviewClock]:
    """Reviews still pending for a tenant, soonest deadline first (the reviewers' board)."""
    stmt = (
        select(*[review_clock.c[f] for f in _REVIEW_FIELDS])
        .where(review_clock.c.tenant == tenant, review_clock.c.stopped_at.is_(None))
        .order_by(review_clock.c.due_at)
        .limit(limit)
    )
    return [_to_review(r) for r in (await session.execute(stmt)).mappings()]


_CLAIM_REVIEWS = text(
    f"SELECT {', '.join(_REVIEW_FIELDS)} FROM {SCHEMA}.review_clock "
    "WHERE next_due_at IS NOT NULL AND next_due_at <= :now ORDER BY next_due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)


async def claim_due_reviews(session: AsyncSession, now: datetime, limit: int) -> list[ReviewClock]:
    return [_to_review(r) for r in (await session.execute(_CLAIM_REVIEWS, {"now": now, "limit": limit})).mappings()]


# The grid of a record's ticket, from its newest handling clock (for the grid head's message).
_GRID = (
    f"(SELECT h.grid_code FROM {SCHEMA}.clock h WHERE h.ticket_id = s.ticket_id AND h.kind = 'handle' "
    "ORDER BY h.round DESC LIMIT 1) AS grid_code"
)
_SUP_COLUMNS = ", ".join(f"s.{f}" for f in _SUP_FIELDS)
_CLAIM_UNANNOUNCED = text(
    f"SELECT {_SUP_COLUMNS}, {_GRID} FROM {SCHEMA}.supervision s WHERE s.announced_at IS NULL "
    "ORDER BY s.opened_at LIMIT :limit FOR UPDATE OF s SKIP LOCKED"
)
# Only announced records: supervision.opened always precedes supervision.overdue of the same record.
_CLAIM_OVERDUE = text(
    f"SELECT {_SUP_COLUMNS}, {_GRID} FROM {SCHEMA}.supervision s "
    "WHERE s.closed_at IS NULL AND s.overdue_at IS NULL AND s.due_at <= :now AND s.announced_at IS NOT NULL "
    "ORDER BY s.due_at LIMIT :limit FOR UPDATE OF s SKIP LOCKED"
)


def _to_supervision(row: Any) -> tuple[Supervision, str | None]:
    values = {f: row[f] for f in _SUP_FIELDS}
    values["recipients"] = tuple(values["recipients"])
    return Supervision(**values), row["grid_code"]


async def claim_unannounced(session: AsyncSession, limit: int) -> list[tuple[Supervision, str | None]]:
    """Records not yet announced (opened by the timer's SQL or by a handler), with their grid code."""
    return [_to_supervision(r) for r in (await session.execute(_CLAIM_UNANNOUNCED, {"limit": limit})).mappings()]


async def claim_overdue(session: AsyncSession, now: datetime, limit: int) -> list[tuple[Supervision, str | None]]:
    """Open records past their report-back deadline that have not fired yet."""
    rows = await session.execute(_CLAIM_OVERDUE, {"now": now, "limit": limit})
    return [_to_supervision(r) for r in rows.mappings()]


async def mark_announced(session: AsyncSession, ids: list[uuid.UUID], at: datetime) -> None:
    if ids:
        await session.execute(supervision.update().where(supervision.c.id.in_(ids)).values(announced_at=at))


async def mark_overdue(session: AsyncSession, ids: list[uuid.UUID], at: datetime) -> None:
    if ids:
        await session.execute(supervision.update().where(supervision.c.id.in_(ids)).values(overdue_at=at))


async def sign_rounds(session: AsyncSession, ticket_ids: list[uuid.UUID]) -> set[tuple[uuid.UUID, int]]:
    """(ticket, round) pairs that have a 签收 clock, i.e. rounds a dispatch armed (not 重办 rounds)."""
    rows = await session.execute(
        select(clock.c.ticket_id, clock.c.round).where(clock.c.ticket_id.in_(ticket_ids), clock.c.kind == "sign")
    )
    return {(r[0], r[1]) for r in rows.all()}
