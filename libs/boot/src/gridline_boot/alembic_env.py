"""The body of every service's ``migrations/env.py``: async engine, one schema, its own version table."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def run(target_metadata: MetaData | None = None) -> None:
    cfg = context.config
    schema = cfg.get_main_option("gridline.schema")
    url = cfg.get_main_option("sqlalchemy.url")
    assert schema and url, "run migrations through gridline_boot.migrate"

    def do_run(conn: Connection) -> None:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        conn.execute(text(f'SET search_path TO "{schema}", public'))
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
            # Only this service's tables; alembic's own version table is never a model difference.
            include_name=lambda name, type_, _parent: not (type_ == "table" and name == "alembic_version"),
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            # Two services migrating at once on a fresh database must not race on CREATE SCHEMA.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"migrate:{schema}"})
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(main())
