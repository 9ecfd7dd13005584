"""Per-unit rate gauges on real PostgreSQL: only the 红黑榜 units get series, with the right values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import store
from escalation.domain import arm_clock, stop
from escalation.handlers import Escalation
from escalation.policy import DEFAULT_POLICIES
from escalation.timer import Timer
from gridline_calendar import WorkCalendar
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1

TENANT = "330199"
SIGN = DEFAULT_POLICIES["sign-1wd"]


def value(unit: str, rate: str) -> float | None:
    return REGISTRY.get_sample_value("escalation_unit_rate", {"tenant": TENANT, "unit": unit, "rate": rate})


async def test_only_the_red_and_black_units_are_exported(sessions: async_sessionmaker[AsyncSession]) -> None:
    now = datetime.now(UTC)
    started = now - timedelta(minutes=5)
    async with sessions() as s, s.begin():
        await s.execute(delete(store.clock).where(store.clock.c.tenant == TENANT))
        # Unit A signs every ticket in time, B none, C half: with k = 1 only A (红榜) and B (黑榜).
        for unit, signed in (("A", 4), ("B", 0), ("C", 2)):
            for i in range(4):
                e = TicketDispatchedV1(
                    ticket_id=uuid.uuid4(),
                    ticket_no=f"GL-IT-RATE-{unit}{i}",
                    category_code="0102",
                    unit_code=unit,
                    sla_policy_key=SIGN.key,
                    dispatched_at=started,
                    reporter=ReporterRef(),
                )
                c, _ = arm_clock(e, TENANT, SIGN, WorkCalendar(), kind="sign")
                if i < signed:
                    c, _ = stop(c, now - timedelta(minutes=1), "signed")
                await store.insert_clock(s, c, [])
    timer = Timer(
        sessions=sessions, escalation=Escalation(timezone="Asia/Shanghai"), interval_s=1, batch_max=10, rate_gauge_k=1
    )
    await timer.rate_gauges()
    assert value("A", "on_time_sign") == 1.0 and value("B", "on_time_sign") == 0.0
    assert value("C", "on_time_sign") is None, "a unit off both lists has no series"
    a, b = value("A", "score"), value("B", "score")
    assert a is not None and b is not None and a > b


async def test_open_clocks_are_counted_by_colour_and_level(sessions: async_sessionmaker[AsyncSession]) -> None:
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        await s.execute(delete(store.clock).where(store.clock.c.tenant == TENANT))
        for i in range(5):
            e = TicketDispatchedV1(
                ticket_id=uuid.uuid4(),
                ticket_no=f"GL-IT-OPEN-{i}",
                category_code="0102",
                unit_code="A",
                sla_policy_key=SIGN.key,
                dispatched_at=now - timedelta(minutes=5),
                reporter=ReporterRef(),
            )
            c, _ = arm_clock(e, TENANT, SIGN, WorkCalendar(), kind="sign")
            if i < 2:
                c, _ = stop(c, now - timedelta(minutes=1), "signed")  # stopped clocks are not open
            await store.insert_clock(s, c, [])
    timer = Timer(sessions=sessions, escalation=Escalation(timezone="Asia/Shanghai"), interval_s=1, batch_max=10)
    await timer.gauges()
    samples = [
        s
        for metric in REGISTRY.collect()
        if metric.name == "escalation_open_clocks"
        for s in metric.samples
        if s.labels["tenant"] == TENANT
    ]
    assert sum(s.value for s in samples) == 3
    assert {(s.labels["kind"], s.labels["colour"], s.labels["level"]) for s in samples} == {("sign", "green", "none")}
