"""12345 sync-back tables (schema ``notify``): which tickets came from a platform, where to push, the queue.

Never commits: the edge (consumer, worker, API) owns the transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from .store import metadata

# Kept from ticket.received (the only event carrying the origin), so later events find their order.
syncback_order = Table(
    "syncback_order",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("integration", Text, nullable=False),
    Column("external_id", Text, nullable=False),
    Column("ticket_no", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Where a platform takes callbacks; the secret is sealed with notify's PII keyring, never returned.
syncback_endpoint = Table(
    "syncback_endpoint",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("integration", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("api_key", Text, nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One push per (event, order). ``seq`` orders an order's pushes; a row is claimable only when every
# earlier row of its order is acknowledged. ``id`` is the Idempotency-Key sent on every try.
syncback_item = Table(
    "syncback_item",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("event_id", Uuid, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("integration", Text, nullable=False),
    Column("external_id", Text, nullable=False),
    Column("ticket_id", Uuid, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),  # pending → acked
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_code", Text),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("acked_at", DateTime(timezone=True)),
)
Index(
    "ix_syncback_item_order_pending",
    syncback_item.c.tenant,
    syncback_item.c.integration,
    syncback_item.c.external_id,
    syncback_item.c.seq,
    postgresql_where=text("state = 'pending'"),
)
Index("ix_syncback_item_due", syncback_item.c.next_attempt_at, postgresql_where=text("state = 'pending'"))
Index("ix_syncback_item_ticket", syncback_item.c.ticket_id)


async def add_order(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(syncback_order).values(**values).on_conflict_do_nothing())


async def get_order(session: AsyncSession, ticket_id: uuid.UUID) -> Any | None:
    return (await session.execute(select(syncback_order).where(syncback_order.c.ticket_id == ticket_id))).first()


async def enqueue(session: AsyncSession, **values: Any) -> bool:
    stmt = insert(syncback_item).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def upsert_endpoint(session: AsyncSession, **values: Any) -> None:
    stmt = insert(syncback_endpoint).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "integration"],
        set_={
            "url": stmt.excluded.url,
            "api_key": stmt.excluded.api_key,
            "secret_sealed": stmt.excluded.secret_sealed,
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)


async def endpoints(session: AsyncSession, tenant: str) -> list[Any]:
    q = select(
        syncback_endpoint.c.tenant,
        syncback_endpoint.c.integration,
        syncback_endpoint.c.url,
        syncback_endpoint.c.api_key,
        syncback_endpoint.c.updated_at,
    ).where(syncback_endpoint.c.tenant == tenant)
    return list((await session.execute(q.order_by(syncback_endpoint.c.integration))).all())


async def claim(session: AsyncSession, now: datetime, limit: int, lease_s: float) -> list[Any]:
    """Due heads of their orders, locked, leased and counted as an attempt (one transaction).

    The lease (longer than a call's timeout) keeps a head in flight from being claimed again; if the
    process dies, the head is due again when the lease ends and is resent with the same key.
    """
    i = syncback_item.alias("i")
    e = syncback_item.alias("e")
    earlier = (
        select(e.c.id)
        .where(
            e.c.state == "pending",
            e.c.tenant == i.c.tenant,
            e.c.integration == i.c.integration,
            e.c.external_id == i.c.external_id,
            e.c.seq < i.c.seq,
        )
        .exists()
    )
    q = (
        select(
            i.c.id,
            i.c.seq,
            i.c.event_id,
            i.c.tenant,
            i.c.integration,
            i.c.external_id,
            i.c.event_type,
            i.c.payload,
            i.c.occurred_at,
            i.c.attempts,
            syncback_endpoint.c.url,
            syncback_endpoint.c.api_key,
            syncback_endpoint.c.secret_sealed,
        )
        .join(
            syncback_endpoint,
            (syncback_endpoint.c.tenant == i.c.tenant) & (syncback_endpoint.c.integration == i.c.integration),
        )
        .where(i.c.state == "pending", i.c.next_attempt_at <= now, ~earlier)
        .order_by(i.c.next_attempt_at)
        .limit(limit)
        .with_for_update(of=i, skip_locked=True)
    )
    rows = list((await session.execute(q)).all())
    if rows:
        await session.execute(
            update(syncback_item)
            .where(syncback_item.c.id.in_([r.id for r in rows]))
            .values(
                attempts=syncback_item.c.attempts + 1,
                last_attempt_at=now,
                next_attempt_at=now + timedelta(seconds=lease_s),
            )
        )
    return rows


async def acked(session: AsyncSession, item_id: uuid.UUID, now: datetime, code: str) -> bool:
    result = await session.execute(
        update(syncback_item)
        .where(syncback_item.c.id == item_id, syncback_item.c.state == "pending")
        .values(state="acked", acked_at=now, last_code=code, last_error=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def retry_later(session: AsyncSession, item_id: uuid.UUID, at: datetime, code: str, error: str) -> None:
    await session.execute(
        update(syncback_item)
        .where(syncback_item.c.id == item_id, syncback_item.c.state == "pending")
        .values(next_attempt_at=at, last_code=code, last_error=error[:500])
    )


async def backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """(pending pushes, the oldest one's event time) for the lag gauges."""
    row = (
        await session.execute(
            select(func.count(), func.min(syncback_item.c.occurred_at)).where(syncback_item.c.state == "pending")
        )
    ).one()
    return int(row[0]), row[1]


async def for_ticket(session: AsyncSession, tenant: str, ticket_id: uuid.UUID) -> list[Any]:
    q = (
        select(syncback_item)
        .where(syncback_item.c.tenant == tenant, syncback_item.c.ticket_id == ticket_id)
        .order_by(syncback_item.c.seq)
    )
    return list((await session.execute(q)).all())
