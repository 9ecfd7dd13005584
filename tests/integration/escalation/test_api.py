"""Supervisor API on the real schema: policies as versioned tenant data with validation, calendar
overrides, and the 2027 gap as a clear error."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import store
from escalation.api import build_router
from escalation.handlers import Escalation
from escalation.policy import DEFAULT_POLICIES
from escalation.supervision import Supervision
from gridline_boot.http import install_error_handlers
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import (
    ReporterRef,
    TicketCallbackRecordedV1,
    TicketDispatchedV1,
    TicketRepliedV1,
    TicketSignedV1,
)

TENANT = "330106"


@pytest.fixture(scope="module")
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router())
    app.state.sessions = sessions
    app.state.timezone = "Asia/Shanghai"
    app.state.escalation = Escalation(timezone="Asia/Shanghai")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://esc") as c:
        yield c


def policy_body(**changes: Any) -> dict[str, Any]:
    body = DEFAULT_POLICIES["standard-5wd"].to_dict()
    body.update(key="xihu-complaint-7wd", name="西湖区投诉 7个工作日", **changes)
    body["limit"] = {"kind": "working_days", "amount": 7}
    return body


async def test_policies_are_versioned_and_validated(api: httpx.AsyncClient) -> None:
    r1 = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body())
    assert r1.status_code == 201 and r1.json()["version"] == 1
    r2 = await api.post(
        f"/v1/tenants/{TENANT}/policies", json=policy_body(warn_before={"kind": "working_days", "amount": 2})
    )
    assert r2.status_code == 201 and r2.json()["version"] == 2
    versions = (await api.get(f"/v1/tenants/{TENANT}/policies/xihu-complaint-7wd")).json()
    assert [v["version"] for v in versions] == [1, 2]
    listed = {p["key"]: p for p in (await api.get(f"/v1/tenants/{TENANT}/policies")).json()}
    assert listed["xihu-complaint-7wd"]["source"] == "tenant" and listed["xihu-complaint-7wd"]["version"] == 2
    assert listed["standard-5wd"]["source"] == "default"

    bad = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body(warn_at_fraction=0.5))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"
    assert "时限策略无效" in bad.json()["error"]["message"]
    no_sign = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body(sign_policy_key="sign-never"))
    assert no_sign.status_code == 422 and no_sign.json()["error"]["code"] == "unknown_sign_policy"
    missing = await api.get(f"/v1/tenants/{TENANT}/policies/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_policy"


async def test_2027_is_a_clear_error_until_its_notice_is_entered(api: httpx.AsyncClient) -> None:
    gap = await api.get(f"/v1/tenants/{TENANT}/calendar/2027")
    assert gap.status_code == 409 and gap.json()["error"]["code"] == "calendar_gap"
    # 2027 元旦: Fri 1 Jan off (an illustrative entry; the real notice is entered the same way).
    r = await api.put(f"/v1/tenants/{TENANT}/calendar/2027-01-01", json={"is_workday": False, "note": "元旦"})
    assert r.status_code == 204
    year = (await api.get(f"/v1/tenants/{TENANT}/calendar/2027")).json()
    assert year["overrides"] == {"2027-01-01": False}
    assert year["workdays_by_month"]["1"] == 20  # 21 weekdays in January 2027, less 元旦
    known = (await api.get(f"/v1/tenants/{TENANT}/calendar/2026")).json()
    assert known["workdays_by_month"]["10"] == 18  # 国庆 2026 from chinese_calendar, 调休 Saturdays included
    assert (await api.delete(f"/v1/tenants/{TENANT}/calendar/2027-01-01")).status_code == 204
    assert (await api.delete(f"/v1/tenants/{TENANT}/calendar/2027-01-01")).status_code == 404
    assert (await api.get(f"/v1/tenants/{TENANT}/calendar/1999")).json()["error"]["code"] == "bad_year"


def _env(data: Any) -> Envelope[Any]:
    tid = str(data.ticket_id)
    return Envelope(source="intake", tenant=TENANT, subject=tid, correlation_id=tid, data=data)


def _t(tid: uuid.UUID, no: str, unit: str, at: datetime) -> dict[str, Any]:
    return dict(
        ticket_id=tid,
        ticket_no=no,
        from_status="accepted",
        to_status="accepted",
        actor_role="unit",
        actor=unit,
        at=at,
        unit_code=unit,
    )


async def test_rankings_from_lifecycle_events(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """One unit signs and replies on time and satisfies the caller; another is late and does not."""
    esc = Escalation(timezone="Asia/Shanghai")
    sh = ZoneInfo("Asia/Shanghai")
    plan = {
        "RANK-GOOD": (datetime(2026, 11, 23, 11, tzinfo=sh), datetime(2026, 11, 24, 10, tzinfo=sh), "satisfied", True),
        "RANK-LATE": (
            datetime(2026, 11, 25, 10, tzinfo=sh),
            datetime(2026, 11, 30, 18, tzinfo=sh),
            "unsatisfied",
            False,
        ),
    }
    for unit, (signed, replied, satisfaction, resolved) in plan.items():
        tid, no = uuid.uuid4(), f"GL-IT-{unit}"
        steps = [
            TicketDispatchedV1(
                ticket_id=tid,
                ticket_no=no,
                category_code="0102",
                unit_code=unit,
                sla_policy_key="standard-5wd",
                dispatched_at=datetime(2026, 11, 23, 10, tzinfo=sh),
                reporter=ReporterRef(),
            ),
            TicketSignedV1(**_t(tid, no, unit, signed)),
            TicketRepliedV1(**_t(tid, no, unit, replied), reply="已处理"),
            TicketCallbackRecordedV1(
                **_t(tid, no, unit, replied + timedelta(hours=1)), satisfaction=satisfaction, resolved=resolved
            ),
        ]
        handlers = esc.handlers()
        for data in steps:
            async with sessions() as s, s.begin():
                await handlers[type(data)](s, _env(data))

    r = await api.get(f"/v1/tenants/{TENANT}/rankings", params={"period": "month", "day": "2026-11-23", "k": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    units = {u["unit_code"]: u for u in body["units"]}
    good, late = units["RANK-GOOD"], units["RANK-LATE"]
    assert good["score"] == 100.0 and good["rates"]["on_time_sign"] == 1.0 and good["rates"]["satisfaction"] == 1.0
    assert late["rates"]["on_time_sign"] == 0.0 and late["rates"]["on_time_close"] == 0.0
    assert late["score"] == 15.0  # only "no 退单, no 重办" (weights 0.05 + 0.10) count for it
    assert good["mean_handling_hours"] == 24.0
    assert [u["unit_code"] for u in body["red"]] == ["RANK-GOOD"]
    assert [u["unit_code"] for u in body["black"]] == ["RANK-LATE"]

    csv_r = await api.get(f"/v1/tenants/{TENANT}/rankings", params={"day": "2026-11-23", "format": "csv"})
    lines = csv_r.text.strip().splitlines()
    assert csv_r.headers["content-type"].startswith("text/csv") and lines[0].startswith("unit_code,score,")
    assert lines[1].startswith("RANK-GOOD,100.0,")
    week = (await api.get(f"/v1/tenants/{TENANT}/rankings", params={"period": "week", "day": "2026-11-29"})).json()
    assert week["start"].startswith("2026-11-23T00:00:00+08:00")
    bad = await api.get(f"/v1/tenants/{TENANT}/rankings", params={"weights": "speed:1"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_weights"


async def test_supervision_records_open_with_the_ladder_and_close_by_verification(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A 特急 order 7 h late: 督办单 at breach + 2 h and its repeat 2 h later open two records."""
    tid = uuid.uuid4()
    data = TicketDispatchedV1(
        ticket_id=tid,
        ticket_no="GL-IT-SUPERVISION",
        category_code="0102",
        unit_code="RANK-SUP",
        priority="critical",
        sla_policy_key="critical-2h",
        dispatched_at=datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=7),
        reporter=ReporterRef(),
    )
    async with sessions() as s, s.begin():
        await Escalation(timezone="Asia/Shanghai").on_ticket_dispatched(s, _env(data))
    records = [r for r in (await api.get(f"/v1/tenants/{TENANT}/supervisions")).json() if r["ticket_id"] == str(tid)]
    assert [r["kind"] for r in records] == ["督办单", "督办单"]
    assert records[0]["recipients"] == ["unit_head", "street_leader", "district_leader", "supervisor"]
    first = records[0]["id"]
    url = f"/v1/tenants/{TENANT}/supervisions/{first}/close"
    empty = await api.post(url, json={"verified_by": "督查组-王", "verification": ""})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "verification_required"
    done = await api.post(url, json={"verified_by": "督查组-王", "verification": "现场核查，井盖已更换"})
    assert done.status_code == 200 and done.json()["verified_by"] == "督查组-王"
    again = await api.post(url, json={"verified_by": "督查组-王", "verification": "再次"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_closed"
    still_open = [r for r in (await api.get(f"/v1/tenants/{TENANT}/supervisions")).json() if r["ticket_id"] == str(tid)]
    assert len(still_open) == 1
    unknown = await api.post(f"/v1/tenants/{TENANT}/supervisions/{uuid.uuid4()}/close", json=done.json())
    assert unknown.status_code == 404

    # The 督办 repeats every 2 h (twice so far); acknowledging it stops the rest.
    ack = await api.post(f"/v1/tenants/{TENANT}/clocks/{tid}/ack", json={"by": "XH-SUP-07"})
    assert ack.status_code == 200, ack.text
    assert ack.json()["level"] == "E3" and ack.json()["next_due_at"] is None
    again_ack = await api.post(f"/v1/tenants/{TENANT}/clocks/{tid}/ack", json={"by": "XH-SUP-07"})
    assert again_ack.status_code == 409 and again_ack.json()["error"]["code"] == "nothing_to_acknowledge"
    async with sessions() as s:
        payloads = (await s.execute(select(store.outbox.c.payload).where(store.outbox.c.key == str(tid)))).scalars()
        acks = [json.loads(p) for p in payloads if b"repeats_cancelled" in p]
    assert [(a["step_code"], a["repeats_cancelled"], a["by"]) for a in acks] == [("E3", 2, "XH-SUP-07")]


async def test_working_hours_are_tenant_data(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = "/v1/tenants/330108/calendar/working-hours"
    assert (await api.get(url)).json() == {"windows": [["09:00", "12:00"], ["13:30", "17:30"]]}
    bad = await api.put(url, json={"windows": [["14:00", "18:00"], ["08:30", "12:00"]]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_working_hours"
    nonsense = await api.put(url, json={"windows": [["8 点", "12:00"]]})
    assert nonsense.status_code == 422 and nonsense.json()["error"]["code"] == "bad_working_hours"
    assert (await api.put(url, json={"windows": [["08:30", "12:00"], ["14:00", "18:00"]]})).status_code == 204
    assert (await api.get(url)).json() == {"windows": [["08:30", "12:00"], ["14:00", "18:00"]]}
    async with sessions() as s:
        cal = await Escalation(timezone="Asia/Shanghai").calendar(s, "330108")
    assert cal.working_hours == ((time(8, 30), time(12)), (time(14), time(18)))
    # Close of business is now 18:00: a 1-working-day limit from Monday ends Tuesday 18:00.
    assert cal.add_working_days(datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("Asia/Shanghai")), 1).hour == 18


async def test_repeat_points_group_reports_of_the_same_place(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Three reports in one 0.001° cell and two at one address (written differently) within 30 days;
    one more at the cell but 40 days ago, one elsewhere: with min=3 only the cell, with min=2 both."""
    from gridline_contracts.intake import GeoPoint, TicketReceivedV1

    tenant = "330110"
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    esc = Escalation(timezone="Asia/Shanghai")
    reports: list[tuple[GeoPoint | None, str | None, timedelta]] = [
        (GeoPoint(lon=120.12341, lat=30.25912), None, timedelta(days=1)),
        (GeoPoint(lon=120.12349, lat=30.25938), None, timedelta(days=3)),
        (GeoPoint(lon=120.12302, lat=30.25881), None, timedelta(days=29)),
        (GeoPoint(lon=120.12341, lat=30.25912), None, timedelta(days=40)),
        (GeoPoint(lon=120.20000, lat=30.30000), None, timedelta(days=2)),
        (None, "文三路 478 号（华星时代广场）", timedelta(days=5)),
        (None, "文三路478号 华星时代广场", timedelta(days=6)),
    ]
    for i, (loc, addr, ago) in enumerate(reports):
        e = TicketReceivedV1(
            ticket_id=uuid.uuid4(),
            ticket_no=f"GL-IT-REP-{i}",
            channel="hotline",
            category_code="0102",
            description="占道经营",
            location=loc,
            address=addr,
            area_code="330106",
            reported_at=now - ago,
            received_at=now - ago,
            reporter=ReporterRef(),
        )
        async with sessions() as s, s.begin():
            await esc.on_ticket_received(
                s, Envelope(source="intake", tenant=tenant, subject="x", correlation_id="x", data=e)
            )
    r = await api.get(f"/v1/tenants/{tenant}/repeat-points", params={"min": 3})
    assert r.status_code == 200
    points = r.json()["points"]
    assert [(p["place_key"], p["reports"]) for p in points] == [("loc:30.259,120.123", 3)]
    assert points[0]["ticket_nos"] == ["GL-IT-REP-0", "GL-IT-REP-1", "GL-IT-REP-2"]
    both = (await api.get(f"/v1/tenants/{tenant}/repeat-points", params={"min": 2})).json()["points"]
    assert {p["place_key"]: p["reports"] for p in both} == {
        "loc:30.259,120.123": 3,
        "addr:330106:文三路478号华星时代广场": 2,
    }
    csv_r = await api.get(f"/v1/tenants/{tenant}/repeat-points", params={"min": 2, "format": "csv"})
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    lines = csv_r.text.strip().splitlines()
    assert lines[0].startswith("place_key,reports") and len(lines) == 3
    bad = await api.get(f"/v1/tenants/{tenant}/repeat-points", params={"min": 1})
    assert bad.status_code == 422


async def test_rankings_by_street_community_and_sponsor(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Grid codes carry 街道 (9 digits) and 社区 (12); sponsors answer for the areas assigned to them."""
    tenant = "330112"
    sh = ZoneInfo("Asia/Shanghai")
    esc = Escalation(timezone="Asia/Shanghai")
    dispatched = datetime(2026, 10, 12, 10, tzinfo=sh)
    # (grid, signs on time?): street 330112001 has two communities, street 330112002 one.
    tickets = [
        ("330112001001007", True),
        ("330112001001008", True),
        ("330112001002001", False),
        ("330112002001003", False),
        (None, True),  # no grid: ranked per unit only
    ]
    for i, (grid, on_time) in enumerate(tickets):
        tid, no = uuid.uuid4(), f"GL-IT-LVL-{i}"
        signed = dispatched + timedelta(hours=1 if on_time else 72)
        for data in (
            TicketDispatchedV1(
                ticket_id=tid,
                ticket_no=no,
                category_code="0102",
                unit_code="U1",
                grid_code=grid,
                sla_policy_key="standard-5wd",
                dispatched_at=dispatched,
                reporter=ReporterRef(),
            ),
            TicketSignedV1(**_t(tid, no, "U1", signed)),
        ):
            async with sessions() as s, s.begin():
                env = Envelope(source="intake", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)
                await esc.handlers()[type(data)](s, env)
    put = await api.put(f"/v1/tenants/{tenant}/sponsor-areas/330112001001", json={"sponsor_code": "市城管局"})
    assert put.status_code == 200
    await api.put(f"/v1/tenants/{tenant}/sponsor-areas/330112001", json={"sponsor_code": "市住建局"})
    bad = await api.put(f"/v1/tenants/{tenant}/sponsor-areas/33x", json={"sponsor_code": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_area_code"

    async def rates(level: str) -> dict[str, float | None]:
        r = await api.get(f"/v1/tenants/{tenant}/rankings", params={"day": "2026-10-12", "level": level})
        assert r.status_code == 200, r.text
        assert r.json()["level"] == level
        return {u["unit_code"]: u["rates"]["on_time_sign"] for u in r.json()["units"]}

    assert await rates("unit") == {"U1": 0.6}
    assert await rates("street") == {"330112001": 2 / 3, "330112002": 0.0}
    assert await rates("community") == {"330112001001": 1.0, "330112001002": 0.0, "330112002001": 0.0}
    # The longest assigned prefix wins: 社区 001001 → 市城管局, the rest of 街道 001 → 市住建局; 002 unsponsored.
    assert await rates("sponsor") == {"市城管局": 1.0, "市住建局": 0.0}
    csv_r = await api.get(
        f"/v1/tenants/{tenant}/rankings", params={"day": "2026-10-12", "level": "street", "format": "csv"}
    )
    assert "330112001" in csv_r.text and "rankings-330112-street-month" in csv_r.headers["content-disposition"]


async def test_escalations_own_policy_table_picks_the_policy_at_dispatch(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A (category, *, complaint) rule overrides routing's key for complaints only; versions are kept."""
    from gridline_contracts.intake import TicketReceivedV1

    tenant = "330113"
    url = f"/v1/tenants/{tenant}/sla-rules"
    bad = await api.post(url, json={"category_code": "0102", "priority": "asap", "policy_key": "standard-5wd"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_sla_rule"
    unknown = await api.post(url, json={"category_code": "0102", "policy_key": "nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_policy"
    r1 = await api.post(url, json={"category_code": "0102", "demand_type": "complaint", "policy_key": "consult-3wd"})
    r2 = await api.post(url, json={"category_code": "0102", "demand_type": "complaint", "policy_key": "complaint-5wd"})
    assert (r1.status_code, r1.json()["version"], r2.json()["version"]) == (201, 1, 2)
    assert [r["policy_key"] for r in (await api.get(url)).json()] == ["complaint-5wd"]
    assert len((await api.get(url, params={"history": "true"})).json()) == 2

    esc = Escalation(timezone="Asia/Shanghai")
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    keys = {}
    for demand in ("complaint", "consult"):
        tid = uuid.uuid4()
        received = TicketReceivedV1(
            ticket_id=tid,
            ticket_no=f"GL-IT-RULE-{demand}",
            channel="hotline",
            category_code="0102",
            demand_type=demand,  # type: ignore[arg-type]
            description="噪音扰民",
            reported_at=now,
            received_at=now,
            reporter=ReporterRef(),
        )
        dispatched = TicketDispatchedV1(
            ticket_id=tid,
            ticket_no=f"GL-IT-RULE-{demand}",
            category_code="0102",
            unit_code="U1",
            sla_policy_key="standard-5wd",
            dispatched_at=now,
            reporter=ReporterRef(),
        )
        for data in (received, dispatched):
            async with sessions() as s, s.begin():
                env = Envelope(source="intake", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)
                await esc.handlers()[type(data)](s, env)
        async with sessions() as s:
            clock = await store.get_clock(s, tid)
        assert clock is not None
        keys[demand] = (clock.policy_key, clock.requested_policy_key)
    assert keys == {"complaint": ("complaint-5wd", "standard-5wd"), "consult": ("standard-5wd", "standard-5wd")}


async def test_return_window_reviews_and_the_closure_event_through_the_api(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The 退单 window's end on the clock and the board; the new limits validated on save; a pending
    review on the reviewers' board; 销号 publishes supervision.closed."""
    sh = ZoneInfo("Asia/Shanghai")
    bad = await api.post(
        f"/v1/tenants/{TENANT}/policies",
        json=policy_body(return_window={"limit": {"kind": "working_days", "amount": 1.5}}),
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"
    bad = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body(review_escalate_after={"kind": "x"}))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"

    tid = uuid.uuid4()
    # Dispatched Wed 30 Sep 2026 10:00: the 2-working-day 退单 window skips National Day (1–7 Oct).
    data = TicketDispatchedV1(
        ticket_id=tid,
        ticket_no="GL-IT-RETURN-WINDOW",
        category_code="0102",
        unit_code="RW-UNIT",
        grid_code="330106001001",
        sla_policy_key="standard-5wd",
        dispatched_at=datetime(2026, 9, 30, 10, tzinfo=sh),
        reporter=ReporterRef(),
    )
    esc = Escalation(timezone="Asia/Shanghai")
    async with sessions() as s, s.begin():
        await esc.on_ticket_dispatched(s, _env(data))
    clock = (await api.get(f"/v1/tenants/{TENANT}/clocks/{tid}")).json()
    assert datetime.fromisoformat(clock["return_window_ends_at"]) == datetime(2026, 10, 9, 17, 30, tzinfo=sh)
    sign = (await api.get(f"/v1/tenants/{TENANT}/clocks/{tid}", params={"kind": "sign"})).json()
    assert sign["return_window_ends_at"] is None
    board = (await api.get(f"/v1/tenants/{TENANT}/board", params={"limit": 1000})).json()
    [on_board] = [c for c in board if c["ticket_id"] == str(tid) and c["kind"] == "handle"]
    assert on_board["return_window_ends_at"] == clock["return_window_ends_at"]

    replied = TicketRepliedV1(
        ticket_id=tid,
        ticket_no="GL-IT-RETURN-WINDOW",
        from_status="accepted",
        to_status="replied",
        actor_role="unit",
        actor="RW-UNIT",
        at=datetime.now(sh),
        reply="已处理",
    )
    async with sessions() as s, s.begin():
        await esc.on_ticket_replied(s, _env(replied))
    pending = [r for r in (await api.get(f"/v1/tenants/{TENANT}/reviews")).json() if r["ticket_id"] == str(tid)]
    assert [(r["review"], r["colour"], r["stopped_at"]) for r in pending] == [("reply", "green", None)]
    assert (await api.get(f"/v1/tenants/{TENANT}/tickets/{tid}/reviews")).json() == pending

    # A 督办单 on this ticket, closed by verification before its deadline: one supervision.closed, on time.
    record = Supervision(
        id=uuid.uuid4(),
        tenant=TENANT,
        ticket_id=tid,
        ticket_no="GL-IT-RETURN-WINDOW",
        unit_code="RW-UNIT",
        kind="督办单",
        step_code="E3",
        recipients=("unit_head",),
        opened_at=datetime.now(sh),
        due_at=datetime.now(sh) + timedelta(days=3),
    )
    async with sessions() as s, s.begin():
        await store.add_supervisions(s, [record])
    done = await api.post(
        f"/v1/tenants/{TENANT}/supervisions/{record.id}/close",
        json={"verified_by": "督查组-李", "verification": "已整改到位"},
    )
    assert done.status_code == 200 and done.json()["overdue_at"] is None
    async with sessions() as s:
        rows = (
            await s.execute(
                select(store.outbox.c.headers, store.outbox.c.payload).where(store.outbox.c.key == str(tid))
            )
        ).all()
    closed = [json.loads(r.payload) for r in rows if dict(r.headers)["ce_type"] == "cn.gridline.supervision.closed.v1"]
    assert [(c["supervision_id"], c["on_time"], c["verified_by"]) for c in closed] == [
        (str(record.id), True, "督查组-李")
    ]
