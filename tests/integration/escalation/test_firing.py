"""The set-based firing path (one SQL statement over precomputed plans) against ``domain.tick``.

On real PostgreSQL: clocks of several policies (a ladder with supervision records, repeating 督办,
一票否决) are armed with their plans; the timer fires them at two instants. Every outbox row must
decode to exactly the event ``tick`` returns (apart from the firing stamp and the event id), the
clock rows must hold exactly ``tick``'s state, supervision records must be the ones ``open_for``
opens, and firing again at the same instant must write nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import store, supervision
from escalation.domain import Clock, SlaEvent, arm_clock, tick
from escalation.handlers import Escalation, plan_of
from escalation.policy import DEFAULT_POLICIES, SlaPolicy
from gridline_calendar import WorkCalendar
from gridline_contracts.escalation import EscalationRaisedV1
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1
from gridline_contracts.registry import lookup, parse_ce_type

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
TENANT = "330106"
STAMPS = ("detected_at", "raised_at")


def clocks() -> list[tuple[Clock, SlaPolicy]]:
    out = []
    starts = [datetime(2026, 10, 9, 9, tzinfo=SH) + timedelta(hours=5 * i, minutes=7 * i) for i in range(12)]
    for i, start in enumerate(starts):
        policy = DEFAULT_POLICIES[["standard-5wd", "critical-2h", "urgent-1wd", "complaint-5wd"][i % 4]]
        if i >= 9:  # 一票否决: straight to the top (repeating) rung
            policy = replace(DEFAULT_POLICIES["critical-2h"], veto_categories=("0901",))
        e = TicketDispatchedV1(
            ticket_id=uuid.uuid4(),
            ticket_no=f"GL-IT-FIRE-{i:03d}",
            category_code="0901" if i >= 9 else "0102",
            unit_code="330106005",
            grid_code="330106001001" if i % 2 else None,
            sla_policy_key=policy.key,
            dispatched_at=start,
            reporter=ReporterRef(),
        )
        clock, _ = arm_clock(e, TENANT, policy, CAL)
        out.append((clock, policy))
    return out


def strip(e: SlaEvent | Any) -> dict[str, Any]:
    d: dict[str, Any] = e.model_dump()
    for f in STAMPS:
        d.pop(f, None)
    return d


async def fire(sessions: async_sessionmaker[AsyncSession], now: datetime) -> list[tuple[str, Any, dict[str, str]]]:
    async with sessions() as s, s.begin():
        await Escalation(timezone="Asia/Shanghai").tick_due(s, now, 10_000)
    async with sessions() as s, s.begin():
        q = select(store.outbox.c.key, store.outbox.c.headers, store.outbox.c.payload).order_by(store.outbox.c.id)
        rows = (await s.execute(q)).all()
        await s.execute(delete(store.outbox))
    out = []
    for r in rows:
        headers = dict(r.headers)
        cls = lookup(*parse_ce_type(headers["ce_type"]))
        assert cls is not None
        out.append((r.key, cls.model_validate_json(r.payload), headers))
    return out


async def test_set_based_firing_equals_tick(sessions: async_sessionmaker[AsyncSession]) -> None:
    armed = clocks()
    async with sessions() as s, s.begin():
        await s.execute(delete(store.clock))
        await s.execute(delete(store.supervision))
        await s.execute(delete(store.outbox))
        for c, p in armed:
            plan = plan_of(c, p, CAL)
            assert plan, f"{c.ticket_no} has nothing planned"
            await store.insert_clock(s, c, plan)
    state = {c.ticket_id: (c, p) for c, p in armed}
    for now in (datetime(2026, 10, 14, 12, tzinfo=SH), datetime(2026, 11, 3, 12, tzinfo=SH)):
        expected: dict[uuid.UUID, list[SlaEvent]] = {}
        for tid, (c, p) in state.items():
            new, events = tick(c, now, p, CAL)
            state[tid] = (new, p)
            if events:
                expected[tid] = events
        assert expected, "the test fires nothing at this instant"
        fired = await fire(sessions, now)
        got: dict[uuid.UUID, list[Any]] = {}
        for key, event, headers in fired:
            assert headers["ce_source"] == "escalation" and headers["ce_tenant"] == TENANT
            assert headers["ce_subject"] == key == str(event.ticket_id)
            assert all(getattr(event, f, now) == now for f in STAMPS), "stamped with the firing time"
            got.setdefault(event.ticket_id, []).append(event)
        assert {k: [strip(e) for e in v] for k, v in got.items()} == {
            k: [strip(e) for e in v] for k, v in expected.items()
        }
        async with sessions() as s:
            for tid, (c, _) in state.items():
                row = await store.get_clock(s, tid)
                assert row == c, f"{c.ticket_no}: the row is not tick's state"
        # Never twice: the same instant again fires nothing.
        assert await fire(sessions, now) == []

    async with sessions() as s:
        records = await store.supervisions(s, TENANT, open_only=False, limit=1000)
    assert records and all(r.kind in supervision.RECORD_KINDS.values() for r in records)


async def test_supervision_ids_match_the_python_derivation(sessions: async_sessionmaker[AsyncSession]) -> None:
    (c, p) = next((c, p) for c, p in clocks() if p.key == "standard-5wd")
    async with sessions() as s, s.begin():
        await s.execute(delete(store.clock))
        await s.execute(delete(store.supervision))
        await store.insert_clock(s, c, plan_of(c, p, CAL))
    now = datetime(2026, 11, 3, 12, tzinfo=SH)
    _, events = tick(c, now, p, CAL)
    await fire(sessions, now)
    want = {
        r.id: r
        for e in events
        if isinstance(e, EscalationRaisedV1) and (r := supervision.open_for(TENANT, e, CAL)) is not None
    }
    async with sessions() as s:
        got = {r.id: r for r in await store.supervisions(s, TENANT, open_only=False, limit=100)}
    assert set(got) == set(want) and want
    for rid, r in got.items():
        assert (r.due_at, r.recipients, r.kind, r.step_code) == (
            want[rid].due_at,
            want[rid].recipients,
            want[rid].kind,
            want[rid].step_code,
        )


async def test_a_clock_without_a_plan_is_ticked_then_fires_from_the_plan_it_got(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The Python path (a row saved without a plan) writes the new plan to ``clock_plan``; the next
    instants then fire set-based, equal to ``tick``; a stopped clock keeps no plan row."""
    (c, p) = next((c, p) for c, p in clocks() if p.key == "standard-5wd")
    ats = [datetime.fromisoformat(i["at"]) for i in plan_of(c, p, CAL)]
    async with sessions() as s, s.begin():
        await s.execute(delete(store.clock))
        await s.execute(delete(store.clock_plan))
        await s.execute(delete(store.outbox))
        await store.insert_clock(s, c, [])

    async def plan_rows() -> list[Any]:
        async with sessions() as s:
            q = select(store.clock_plan.c.plan).where(store.clock_plan.c.ticket_id == c.ticket_id)
            return list((await s.execute(q)).scalars())

    assert await plan_rows() == []
    state = c
    saved: list[Any] = []
    for now in (ats[0] + timedelta(minutes=1), ats[2] + timedelta(minutes=1)):
        state, events = tick(state, now, p, CAL)
        fired = await fire(sessions, now)
        assert [strip(e) for _, e, _ in fired] == [strip(e) for e in events] and events
        async with sessions() as s:
            assert await store.get_clock(s, c.ticket_id) == state
        [plan] = await plan_rows()
        if not saved:  # ticked in Python: the plan of the state it moved to
            want = plan_of(state, p, CAL)
            assert [datetime.fromisoformat(i["at"]) for i in plan] == [datetime.fromisoformat(i["at"]) for i in want]
            saved = plan
        else:  # fired set-based: the plan row is only read
            assert plan == saved
    async with sessions() as s, s.begin():
        await store.save_clock(s, replace(state, state="stopped", next_due_at=None), [])
    assert await plan_rows() == []
