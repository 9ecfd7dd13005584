"""Idempotent consumption: a message's effect and its inbox row commit together, or neither does."""

from __future__ import annotations

import uuid

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


async def claim(session: AsyncSession, table: Table, consumer: str, event_id: uuid.UUID) -> bool:
    """Record (consumer, event id) in the caller's transaction; False if it was already processed."""
    stmt = (
        insert(table).values(consumer=consumer, event_id=event_id).on_conflict_do_nothing().returning(table.c.event_id)
    )
    return (await session.execute(stmt)).first() is not None


async def claim_many(session: AsyncSession, table: Table, consumer: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Claim several messages at once; returns the ids not processed before (same transaction as the effects)."""
    if not event_ids:
        return set()
    stmt = (
        insert(table)
        .values([{"consumer": consumer, "event_id": eid} for eid in dict.fromkeys(event_ids)])
        .on_conflict_do_nothing()
        .returning(table.c.event_id)
    )
    return {row[0] for row in (await session.execute(stmt)).all()}
