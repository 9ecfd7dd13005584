"""intake on the session's real PostgreSQL and Kafka, in its own database.

The service's schema name is fixed and the e2e stack migrates the same schema in the session's
database, so these tests get a database of their own. The app runs in-process (ASGI) with the ``api``
role only: its outbox rows stay in this database (tests read them), and nothing it writes reaches
the shared topics the e2e processes consume.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine, session_factory
from intake import store
from intake.app import create_app
from intake.auth import StaffTokens
from intake.settings import IntakeSettings

ROOT = Path(__file__).resolve().parents[3]
TENANT = "330106"
OTHER_TENANT = "330108"
OPEN311_KEY = "fms-api-key-CRUNCHY-ARMCHAIR"
HOTLINE_SECRET = "hz12345-secret-CRUNCHY-ARMCHAIR"
STAFF_KEYS = "s1:" + base64.urlsafe_b64encode(b"intake-integration-staff-key-32b").decode()


def _key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


@pytest.fixture(scope="session")
def intake_db(stack: Any) -> Iterator[str]:
    base = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"intake_{uuid.uuid4().hex[:10]}"
    url = base.rsplit("/", 1)[0] + "/" + name

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "PII_KEY": "x",
        "PII_TRANSIT_KEY": "x",
    }
    r = subprocess.run(
        [sys.executable, "-m", "intake", "migrate"],
        env=env,
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


def make_settings(stack: Any, db: str, **overrides: Any) -> IntakeSettings:
    integrations = [
        {"id": "hz12345", "tenant": TENANT, "secret": HOTLINE_SECRET, "kind": "hotline", "rate_per_minute": 1000},
        {
            "id": "cg-bridge",
            "tenant": TENANT,
            "secret": "cg-bridge-secret-0123456789",
            "kind": "hotline",
            "scopes": ["act_as_unit", "read_own"],
            "unit_code": "330106-CGJ",
        },
        {"id": "tiny", "tenant": TENANT, "secret": "tiny-secret-0123456789", "rate_per_minute": 2},
        {"id": "fms", "tenant": TENANT, "secret": OPEN311_KEY, "kind": "open311"},
        {"id": "wx-mini", "tenant": TENANT, "secret": "wx-mini-secret-0123456789", "kind": "citizen"},
    ]
    values: dict[str, Any] = {
        "database_url": db,
        "kafka_bootstrap_servers": stack.kafka,
        "pii_key": _key("i1"),
        "pii_transit_key": _key("t1"),
        "staff_token_keys": STAFF_KEYS,
        "integrations": json.dumps(integrations),
        "roles": "api",
        "environment": "test",
        "storage_dir": tempfile.mkdtemp(prefix="intake-attachments-"),
        "max_photo_bytes": 60_000,
        "max_photos": 3,
    }
    values.update(overrides)
    return IntakeSettings(**values)


@dataclass
class Intake:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    tokens: StaffTokens
    settings: IntakeSettings

    def staff(self, role: str, unit: str | None = None, tenant: str = TENANT) -> dict[str, str]:
        token = self.tokens.issue(sub=f"staff-{role}-{unit or 'x'}", tenant=tenant, role=role, unit=unit)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def report(self, **kw: Any) -> dict[str, Any]:
        body = {
            "tenant": TENANT,
            "category_code": "200102",
            "description": "背街小巷垃圾堆积，气味很大",
            "location": {"lon": 120.12, "lat": 30.28, "crs": "gcj02"},
            "phone": f"138{uuid.uuid4().int % 10**8:08d}",
        }
        body.update(kw)
        r = await self.client.post("/v1/reports", json=body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def outbox_types(self, ticket_id: str) -> list[str]:
        async with self.sessions() as s:
            rows = await s.execute(
                select(store.outbox.c.headers).where(store.outbox.c.key == ticket_id).order_by(store.outbox.c.id)
            )
            return [dict(h)["ce_type"] for (h,) in rows.all()]


@pytest.fixture(scope="session")
async def intake(stack: Any, intake_db: str) -> AsyncIterator[Intake]:
    settings = make_settings(stack, intake_db)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Intake(client, app.state.deps.sessions, StaffTokens(STAFF_KEYS), settings)


@pytest.fixture(scope="session")
async def db_sessions(intake_db: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(intake_db.replace("postgresql://", "postgresql+asyncpg://", 1), schema=store.SCHEMA)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
