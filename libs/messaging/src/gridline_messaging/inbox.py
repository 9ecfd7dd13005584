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
