"""The precomputed firing plan (``domain.schedule`` + ``firing.encode``) as pure functions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from escalation import firing
from escalation.domain import Clock, SlaEvent, arm_clock, pause, schedule, stop, tick
from escalation.policy import DEFAULT_POLICIES, SlaPolicy
from gridline_calendar import WorkCalendar
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
STANDARD = DEFAULT_POLICIES["standard-5wd"]
CRITICAL = DEFAULT_POLICIES["critical-2h"]


def armed(policy: SlaPolicy, start: datetime) -> Clock:
    e = TicketDispatchedV1(
        ticket_id=uuid.UUID("5a1e5c0f-7e11-4c0d-9a3b-1234567890ab"),
        ticket_no="GL-20261012-0001",
        category_code="0102",
        unit_code="330106005",
        grid_code="330106001001",
        sla_policy_key=policy.key,
        dispatched_at=start,
        reporter=ReporterRef(),
    )
    return arm_clock(e, "330106", policy, CAL)[0]


def unstamped(events: list[SlaEvent]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        d = e.model_dump()
        d.pop("detected_at", None)
        d.pop("raised_at", None)
        out.append(d)
    return out


def test_the_plan_is_what_tick_fires_at_each_instant() -> None:
    c = armed(STANDARD, datetime(2026, 10, 12, 10, tzinfo=SH))
    plan = schedule(c, STANDARD, CAL)
    codes = [[getattr(e, "step_code", type(e).TYPE) for e in p.events] for p in plan]
    assert codes == [["sla.warned", "E1"], ["sla.breached", "E2"], ["E3"], ["E4"], ["E6"]]
    state = c
    for p in plan:
        state, events = tick(state, p.at, STANDARD, CAL)
        assert unstamped(events) == unstamped(p.events) and state == p.after
    assert plan[-1].after.next_due_at is None


def test_a_late_tick_fires_the_due_prefix_of_the_plan() -> None:
    """After a backlog the timer fires every due instant at once: the same events, the last state."""
    c = armed(CRITICAL, datetime(2026, 10, 12, 10, tzinfo=SH))
    plan = schedule(c, CRITICAL, CAL)
    assert sum(1 for p in plan for e in p.events if getattr(e, "step_code", "") == "E3") == 4  # 1 + 3 repeats
    late = plan[3].at + timedelta(minutes=1)
    state, events = tick(c, late, CRITICAL, CAL)
    due = [p for p in plan if p.at <= late]
    assert unstamped(events) == unstamped([e for p in due for e in p.events])
    assert state == due[-1].after


def test_nothing_is_planned_for_a_paused_or_stopped_clock() -> None:
    c = armed(STANDARD, datetime(2026, 10, 12, 10, tzinfo=SH))
    paused, _ = pause(c, datetime(2026, 10, 12, 11, tzinfo=SH), STANDARD, CAL)
    stopped, _ = stop(c, datetime(2026, 10, 12, 11, tzinfo=SH))
    assert schedule(paused, STANDARD, CAL) == [] and schedule(stopped, STANDARD, CAL) == []


def test_the_plan_stops_before_a_year_without_calendar_data() -> None:
    """E6 (breach + 10 wd) of a clock started mid-December falls in 2027: not planned, not guessed."""
    c = armed(STANDARD, datetime(2026, 12, 14, 10, tzinfo=SH))
    plan = schedule(c, STANDARD, CAL)
    last = plan[-1].after
    assert last.calendar_gap is not None and last.calendar_gap.year == 2027
    assert last.next_due_at is not None and last.next_due_at.year == 2027  # the Python path wakes then
    assert all(p.at.year == 2026 for p in plan)


def test_the_plan_is_bounded() -> None:
    c = armed(CRITICAL, datetime(2026, 10, 12, 10, tzinfo=SH))
    plan = schedule(c, CRITICAL, CAL, limit=2)
    assert len(plan) == 2 and plan[-1].after.next_due_at is not None


def test_encoding_keeps_only_what_the_row_does_not_hold() -> None:
    c = armed(STANDARD, datetime(2026, 10, 12, 10, tzinfo=SH))
    encoded = firing.encode(schedule(c, STANDARD, CAL), CAL)
    first, _, e3 = encoded[0], encoded[1], encoded[2]
    assert first["ev"][0] == {"k": "w"}
    step = first["ev"][1]
    assert step["k"] == "s" and set(step["d"]) == {
        "step_index",
        "step_code",
        "action",
        "recipients",
        "repeat_no",
        "scheduled_at",
    }
    assert "sk" not in step  # a reminder opens no record
    assert e3["ev"][0]["sk"] == "督办单" and datetime.fromisoformat(e3["ev"][0]["sd"]) > datetime.fromisoformat(
        e3["at"]
    )
    assert first["st"]["warned"] is True and first["st"]["level"] == "E1"
    # Independent of the ticket: the same policy and start give the same plan.
    other = replace(c, ticket_id=uuid.uuid4(), ticket_no="GL-OTHER")
    assert firing.encode(schedule(other, STANDARD, CAL), CAL) == encoded
