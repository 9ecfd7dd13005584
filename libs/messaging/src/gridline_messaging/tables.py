"""Outbox and inbox table definitions; each service's Alembic migration creates them in its schema.

The library defines the tables but never runs DDL itself.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB


def outbox_columns() -> list[Column[object]]:
    return [
        # Publish order = id order; one relay per service keeps one ticket's events in order.
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
        # Set when Kafka rejected the row for good (e.g. too large): kept for operators, not retried.
        Column("failed_at", DateTime(timezone=True)),
    ]


def inbox_columns() -> list[Column[object]]:
    return [
        Column("consumer", Text, primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


def make_outbox_table(metadata: MetaData) -> Table:
    return Table("outbox", metadata, *outbox_columns())


def make_inbox_table(metadata: MetaData) -> Table:
    return Table("inbox", metadata, *inbox_columns())
