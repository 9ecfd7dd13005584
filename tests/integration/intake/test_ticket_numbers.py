"""工单编号 from per-tenant daily blocks (intake.ticket_numbers) on the real PostgreSQL.

Unique per tenant and day under concurrency and across replicas; consecutive for a quiet tenant;
blocks grow under load so the counter row is touched far less than once per report; and through
the API, concurrent reports each exist once with their ``ticket.received`` in the outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from gridline_boot.db import create_engine
from intake import store
from intake.app import create_app
from intake.settings import IntakeSettings
from intake.ticket_numbers import TicketNumbers

from .conftest import TENANT, make_settings

DAY = date(2026, 11, 22)


def _engine(db: str) -> Any:
    return create_engine(db.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=1, schema=store.SCHEMA)


def _seq(ticket_no: str) -> int:
    return int(ticket_no.rsplit("-", 1)[1])


async def _counter(engine: Any, tenant: str, day: date) -> int | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(store.ticket_counter.c.seq).where(
                    store.ticket_counter.c.tenant == tenant,
                    store.ticket_counter.c.day == datetime(day.year, day.month, day.day),
                )
            )
        ).first()
    return None if row is None else int(row[0])


async def test_two_replicas_under_concurrency_never_share_a_number(intake_db: str) -> None:
    tenant = f"9{uuid.uuid4().int % 10**5:05d}"
    a_engine, b_engine = _engine(intake_db), _engine(intake_db)
    try:
        a, b = TicketNumbers(a_engine), TicketNumbers(b_engine)
        got = await asyncio.gather(*(r.next(tenant, DAY) for _ in range(150) for r in (a, b)))
        assert len(got) == 300
        assert len(set(got)) == 300, "a number was handed out twice"
        assert all(n.startswith(f"{tenant}-20261122-") for n in got)
        # The row holds the highest number ever handed out: no later block can reuse one.
        high = await _counter(a_engine, tenant, DAY)
        assert high is not None and max(map(_seq, got)) <= high
    finally:
        await a_engine.dispose()
        await b_engine.dispose()


async def test_a_quiet_tenant_gets_consecutive_numbers(intake_db: str) -> None:
    tenant = f"8{uuid.uuid4().int % 10**5:05d}"
    engine = _engine(intake_db)
    now = [0.0]
    try:
        numbers = TicketNumbers(engine, clock=lambda: now[0])
        got = []
        for _ in range(5):
            got.append(await numbers.next(tenant, DAY))
            now[0] += 10  # slower than a block per second: blocks stay one number long
        assert [_seq(n) for n in got] == [1, 2, 3, 4, 5]
        assert got[0] == f"{tenant}-20261122-000001"
        assert await _counter(engine, tenant, DAY) == 5  # nothing reserved beyond what was used
    finally:
        await engine.dispose()


async def test_blocks_grow_under_load_and_a_restart_only_leaves_a_gap(intake_db: str) -> None:
    tenant = f"7{uuid.uuid4().int % 10**5:05d}"
    engine = _engine(intake_db)
    try:
        numbers = TicketNumbers(engine, max_block=64, clock=lambda: 0.0)  # every block used up "at once"
        first = [_seq(await numbers.next(tenant, DAY)) for _ in range(200)]
        assert first == list(range(1, 201))  # one replica: in order, no gap
        reserved = await _counter(engine, tenant, DAY)
        # 1+2+4+…+64, then 64s: 8 blocks for 200 numbers, not 200 row updates.
        assert reserved == 1 + 2 + 4 + 8 + 16 + 32 + 64 + 64 + 64
        # A new process (restart) never reuses the rest of the old block: it starts above it.
        again = TicketNumbers(engine, clock=lambda: 0.0)
        assert _seq(await again.next(tenant, DAY)) == reserved + 1
        # A new day starts again at 1.
        assert (await again.next(tenant, date(2026, 11, 23))).endswith("-20261123-000001")
    finally:
        await engine.dispose()


async def test_concurrent_reports_each_exist_once_with_their_event(stack: Any, intake_db: str) -> None:
    overrides: dict[str, Any] = {}
    fields = IntakeSettings.model_fields
    if "reports_per_ip_per_hour" in fields:  # every request comes from one test client address
        overrides["reports_per_ip_per_hour"] = 100_000
    app = create_app(make_settings(stack, intake_db, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            tag = uuid.uuid4().hex[:8]

            async def one(i: int) -> dict[str, Any]:
                r = await client.post(
                    "/v1/reports",
                    json={
                        "tenant": TENANT,
                        "category_code": "200102",
                        "description": f"并发编号测试 {tag} {i}",
                        "location": {"lon": 120.12, "lat": 30.28, "crs": "gcj02"},
                        "phone": f"139{uuid.uuid4().int % 10**8:08d}",
                    },
                )
                assert r.status_code == 201, r.text
                out: dict[str, Any] = r.json()
                return out

            answers = await asyncio.gather(*(one(i) for i in range(60)))
        sessions = app.state.deps.sessions
        async with sessions() as s:
            rows = (
                await s.execute(
                    select(store.ticket.c.id, store.ticket.c.ticket_no).where(
                        store.ticket.c.description.like(f"并发编号测试 {tag} %")
                    )
                )
            ).all()
            ids = [str(r.id) for r in rows]
            events = (
                await s.execute(
                    select(store.outbox.c.key, func.count())
                    .where(store.outbox.c.key.in_(ids))
                    .group_by(store.outbox.c.key)
                )
            ).all()
    assert sorted(str(a["ticket_id"]) for a in answers) == sorted(ids)
    assert len({r.ticket_no for r in rows}) == 60
    assert {a["ticket_no"] for a in answers} == {r.ticket_no for r in rows}
    assert dict(events) == dict.fromkeys(ids, 1)  # ticket.received, once each, same transaction
