"""A database of its own for the escalation tests (the service's schema name is fixed, and the e2e
stack migrates the same schema in the session's database), on the session's real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine, session_factory

ROOT = Path(__file__).resolve().parents[3]


def service_env(stack: Any, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def esc_db(stack: Any) -> Iterator[str]:
    base = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"esc_{uuid.uuid4().hex[:10]}"
    url = base.rsplit("/", 1)[0] + "/" + name

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    import asyncio

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    r = subprocess.run(
        [sys.executable, "-m", "escalation", "migrate"],
        env=service_env(stack, url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
async def engine(esc_db: str) -> AsyncIterator[AsyncEngine]:
    from escalation import store

    e = create_engine(esc_db.replace("postgresql://", "postgresql+asyncpg://", 1), schema=store.SCHEMA)
    try:
        yield e
    finally:
        await e.dispose()


@pytest.fixture(scope="module")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)
