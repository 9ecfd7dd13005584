"""notify's tables (schema ``notify``). Never commits: the edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text, Uuid, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_messaging.tables import make_inbox_table, make_outbox_table

SCHEMA = "notify"
metadata: MetaData = service_metadata(SCHEMA)

notification = Table(
    "notification",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),  # one event → at most one message per recipient
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("recipient_kind", Text, nullable=False),
    Column("recipient_ref", Text, nullable=False),
    Column("address_sealed", Text),  # phone sealed with notify's key; None until resolved
    Column("masked_recipient", Text, nullable=False),
    # pending → sending → sent | failed | ambiguous (never resent blindly) | pending (retry later)
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("provider", Text),
    Column("provider_message_id", Text),
    Column("last_code", Text),
    Column("last_error", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
)
Index("ix_notification_due", notification.c.next_attempt_at, postgresql_where=text("status = 'pending'"))

recipient = Table(
    "recipient",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("ref", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("phone_sealed", Text, nullable=False),
    Column("masked", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)


async def add_notification(session: AsyncSession, **values: Any) -> bool:
    stmt = insert(notification).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def get_recipient(session: AsyncSession, tenant: str, kind: str, ref: str) -> Any | None:
    return (
        await session.execute(
            select(recipient).where(recipient.c.tenant == tenant, recipient.c.kind == kind, recipient.c.ref == ref)
        )
    ).first()


async def upsert_recipient(session: AsyncSession, **values: Any) -> None:
    stmt = insert(recipient).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "kind", "ref"],
        set_={
            "name": stmt.excluded.name,
            "phone_sealed": stmt.excluded.phone_sealed,
            "masked": stmt.excluded.masked,
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Any]:
    """Take due notifications and mark them ``sending`` (committed before the provider call)."""
    rows = (
        await session.execute(
            select(notification)
            .where(notification.c.status == "pending", notification.c.next_attempt_at <= now)
            .order_by(notification.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if rows:
        await session.execute(
            notification.update()
            .where(notification.c.id.in_([r.id for r in rows]))
            .values(status="sending", attempts=notification.c.attempts + 1, claimed_at=now)
        )
    return list(rows)


async def finish(session: AsyncSession, nid: uuid.UUID, **values: Any) -> None:
    await session.execute(notification.update().where(notification.c.id == nid).values(**values))


async def mark_interrupted_sends(session: AsyncSession, older_than: datetime) -> int:
    """Rows left ``sending`` by a killed process: the provider may have delivered them. Never resend."""
    res = await session.execute(
        notification.update()
        .where(notification.c.status == "sending", notification.c.claimed_at < older_than)
        .values(status="ambiguous", last_code="interrupted", last_error="process stopped during the provider call")
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


async def list_for_ticket(session: AsyncSession, tenant: str, ticket_id: uuid.UUID) -> list[Any]:
    return list(
        (
            await session.execute(
                select(notification)
                .where(notification.c.tenant == tenant, notification.c.ticket_id == ticket_id)
                .order_by(notification.c.created_at)
            )
        ).all()
    )
