"""Each service's Alembic migrations: apply, roll back, re-apply, and match the tables the code uses."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gridline_boot import migrate

SERVICES = ("intake", "routing", "escalation", "notify")


def _dir(service: str) -> Path:
    return Path(importlib.import_module(service).__file__ or "").parent / "migrations"


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_downgrade_upgrade_and_models_match(stack: Any, service: str) -> None:
    # A database of its own, so the schema names of the running services are never touched.
    db = f"migtest_{service}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_sql(stack.database_url, f'CREATE DATABASE "{db}"'))
    url = stack.database_url.rsplit("/", 1)[0] + "/" + db
    try:
        migrate.upgrade(_dir(service), url, service)
        migrate.downgrade(_dir(service), url, service)
        assert asyncio.run(_tables(url, service)) == {"alembic_version"}
        migrate.upgrade(_dir(service), url, service)
        metadata = importlib.import_module(f"{service}.store").metadata
        diff = asyncio.run(_diff(url, service, metadata))
        assert diff == [], f"{service}: models and migrations differ: {diff}"
    finally:
        asyncio.run(_sql(stack.database_url, f'DROP DATABASE "{db}" WITH (FORCE)'))


async def _sql(url: str, sql: str) -> None:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1), isolation_level="AUTOCOMMIT")
    async with engine.connect() as c:
        await c.execute(text(sql))
    await engine.dispose()


async def _tables(url: str, schema: str) -> set[str]:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.connect() as c:
        rows = await c.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema})
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


async def _diff(url: str, schema: str, metadata: Any) -> list[Any]:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))

    def include(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name == schema
        return not (type_ == "table" and name == "alembic_version")

    def compare(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"include_schemas": True, "include_name": include})
        return list(compare_metadata(ctx, metadata))

    async with engine.connect() as c:
        diff = await c.run_sync(compare)
    await engine.dispose()
    return diff
