"""SLA clocks as pure functions: arm → warn → breach → ladder, pause/resume, extend, stop."""

from __future__ import annotations

import ast
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import escalation.domain
from escalation.domain import Clock, ClockError, SlaEvent, arm_clock, extend, pause, resume, stop, tick
from escalation.policy import DEFAULT_POLICIES, Duration, SlaPolicy
from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.escalation import (
    EscalationRaisedV1,
    SlaBreachedV1,
    SlaClockExtendedV1,
    SlaClockPausedV1,
    SlaClockResumedV1,
    SlaClockStartedV1,
    SlaClockStoppedV1,
    SlaWarnedV1,
)
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
STANDARD = DEFAULT_POLICIES["standard-5wd"]
CRITICAL = DEFAULT_POLICIES["critical-2h"]
TENANT = "330106"  # 杭州市西湖区
TICKET_ID = uuid.UUID("5a1e5c0f-7e11-4c0d-9a3b-1234567890ab")


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


MONDAY_10 = at(2026, 11, 23, 10)


def dispatched(
    when: datetime = MONDAY_10, platform_due_at: datetime | None = None, key: str = "standard-5wd"
) -> TicketDispatchedV1:
    return TicketDispatchedV1(
        ticket_id=TICKET_ID,
        ticket_no="GL-20261123-0042",
        category_code="0102",  # 暴露垃圾
        priority="normal",
        unit_code="XH-CG-01",
        grid_code="330106001001001",
        sla_policy_key=key,
        dispatched_at=when,
        platform_due_at=platform_due_at,
        reporter=ReporterRef(masked_phone="138****0000"),
    )


def armed(policy: SlaPolicy = STANDARD, when: datetime = MONDAY_10) -> Clock:
    clock, _ = arm_clock(dispatched(when, key=policy.key), TENANT, policy, CAL)
    return clock


def summary(events: list[SlaEvent]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, EscalationRaisedV1):
            out.append(f"{e.step_code}/{e.action}" + (f"#{e.repeat_no}" if e.repeat_no else ""))
        else:
            out.append(e.TYPE)
    return out


def run_timer(clock: Clock, policy: SlaPolicy, until: datetime) -> tuple[Clock, list[SlaEvent]]:
    """What the durable timer loop does: wake at next_due_at, tick, repeat."""
    events: list[SlaEvent] = []
    while clock.next_due_at is not None and clock.next_due_at <= until:
        clock, fired = tick(clock, clock.next_due_at, policy, CAL)
        assert fired, "a wake-up at next_due_at must fire something"
        events += fired
    return clock, events


class TestArm:
    def test_arm_computes_deadlines_and_announces_them(self) -> None:
        clock, events = arm_clock(dispatched(), TENANT, STANDARD, CAL)
        assert clock.started_at == MONDAY_10
        assert clock.warn_at == at(2026, 11, 27, 17, 30)
        assert clock.due_at == at(2026, 11, 30, 17, 30)
        assert clock.next_due_at == clock.warn_at
        assert (clock.tenant, clock.unit_code, clock.grid_code) == (TENANT, "XH-CG-01", "330106001001001")
        assert (clock.policy_key, clock.policy_version, clock.due_source) == ("standard-5wd", 1, "policy")
        assert clock.state == "running" and clock.colour == "green" and clock.level is None
        assert events == [
            SlaClockStartedV1(
                ticket_id=TICKET_ID,
                ticket_no="GL-20261123-0042",
                unit_code="XH-CG-01",
                policy_key="standard-5wd",
                started_at=MONDAY_10,
                warn_at=at(2026, 11, 27, 17, 30),
                due_at=at(2026, 11, 30, 17, 30),
                time_limit="5 working days",
            )
        ]

    def test_platform_deadline_wins_if_earlier(self) -> None:
        clock, events = arm_clock(dispatched(platform_due_at=at(2026, 11, 25, 12)), TENANT, STANDARD, CAL)
        assert clock.due_at == at(2026, 11, 25, 12)
        assert clock.due_source == "platform"
        assert isinstance(events[0], SlaClockStartedV1)
        assert events[0].time_limit.startswith("platform deadline")

    def test_priority_resolved_policy_is_recorded_with_the_requested_key(self) -> None:
        clock, _ = arm_clock(dispatched(key="standard-5wd"), TENANT, CRITICAL, CAL)
        assert clock.policy_key == "critical-2h"
        assert clock.requested_policy_key == "standard-5wd"
        assert clock.due_at == at(2026, 11, 23, 12)

    def test_a_deadline_in_2027_without_calendar_data_is_refused(self) -> None:
        with pytest.raises(CalendarGapError):
            arm_clock(dispatched(at(2026, 12, 28, 10)), TENANT, STANDARD, CAL)

    def test_naive_dispatch_time_is_refused(self) -> None:
        with pytest.raises(ClockError):
            arm_clock(dispatched(datetime(2026, 11, 23, 10)), TENANT, STANDARD, CAL)


class TestLadder:
    def test_warn_breach_and_ladder_fire_in_order_at_the_right_times(self) -> None:
        clock = armed()
        expected = [
            (at(2026, 11, 27, 17, 30), ["sla.warned", "E1/reminder"], "yellow"),
            (at(2026, 11, 30, 17, 30), ["sla.breached", "E2/overdue_notice"], "red"),
            (at(2026, 12, 1, 17, 30), ["E3/supervision_notice"], "red"),  # breach + 1 wd
            (at(2026, 12, 7, 17, 30), ["E4/pinned_supervision"], "red"),  # breach + 5 wd
            (at(2026, 12, 14, 17, 30), ["E6/interview"], "red"),  # breach + 10 wd
        ]
        for when, fired, colour in expected:
            assert clock.next_due_at == when
            quiet, nothing = tick(clock, when - timedelta(seconds=1), STANDARD, CAL)
            assert nothing == [] and quiet == clock
            clock, events = tick(clock, when, STANDARD, CAL)
            assert summary(events) == fired
            assert clock.colour == colour
        assert clock.next_due_at is None
        assert clock.level == "E6"

    def test_tick_is_idempotent(self) -> None:
        clock, first = tick(armed(), at(2026, 11, 30, 18), STANDARD, CAL)
        assert summary(first) == ["sla.warned", "E1/reminder", "sla.breached", "E2/overdue_notice"]
        again, second = tick(clock, at(2026, 11, 30, 18), STANDARD, CAL)
        assert second == []
        assert again == clock

    def test_a_backlog_fires_every_missed_step_once_and_late(self) -> None:
        now = at(2026, 12, 20, 9)
        clock, events = tick(armed(), now, STANDARD, CAL)
        assert summary(events) == [
            "sla.warned",
            "E1/reminder",
            "sla.breached",
            "E2/overdue_notice",
            "E3/supervision_notice",
            "E4/pinned_supervision",
            "E6/interview",
        ]
        raised = [e for e in events if isinstance(e, EscalationRaisedV1)]
        assert [e.scheduled_at for e in raised] == [
            at(2026, 11, 27, 17, 30),
            at(2026, 11, 30, 17, 30),
            at(2026, 12, 1, 17, 30),
            at(2026, 12, 7, 17, 30),
            at(2026, 12, 14, 17, 30),
        ]
        assert all(e.raised_at == now for e in raised)
        assert [e.step_index for e in raised] == [0, 1, 2, 3, 4]
        assert raised[1].recipients == ["unit_deputy_head", "unit_head", "grid_head"]
        warned = events[0]
        assert isinstance(warned, SlaWarnedV1) and warned.detected_at == now and warned.grid_code == "330106001001001"
        assert clock.next_due_at is None

    @pytest.mark.parametrize("key", sorted(DEFAULT_POLICIES))
    @pytest.mark.parametrize(
        "start",
        [
            MONDAY_10,
            at(2026, 11, 20, 20, 15),  # Friday evening
            at(2026, 9, 30, 16),  # eve of National Day
            at(2026, 2, 13, 12),  # before Spring Festival, with a make-up Saturday next day
            at(2026, 10, 3, 3),  # in the middle of the holiday
        ],
    )
    def test_the_timer_loop_and_one_late_tick_agree(self, key: str, start: datetime) -> None:
        policy = DEFAULT_POLICIES[key]
        end = at(2026, 12, 31)
        _, stepwise = run_timer(armed(policy, start), policy, end)
        _, at_once = tick(armed(policy, start), end, policy, CAL)
        assert summary(stepwise) == summary(at_once)
        assert len(stepwise) == 2 + sum(1 + s.repeat_max for s in policy.ladder)
        scheduled = [
            e.scheduled_at
            if isinstance(e, EscalationRaisedV1)
            else e.warn_at
            if isinstance(e, SlaWarnedV1)
            else e.due_at
            for e in stepwise
            if isinstance(e, EscalationRaisedV1 | SlaWarnedV1 | SlaBreachedV1)
        ]
        assert scheduled == sorted(scheduled)

    def test_repeating_top_step_is_capped(self) -> None:
        clock = armed(CRITICAL)
        assert (clock.warn_at, clock.due_at) == (at(2026, 11, 23, 11, 36), at(2026, 11, 23, 12))
        clock, events = run_timer(clock, CRITICAL, at(2026, 11, 30))
        assert summary(events) == [
            "sla.warned",
            "E1/reminder",
            "sla.breached",
            "E2/overdue_notice",
            "E3/supervision_notice",
            "E3/supervision_notice#1",
            "E3/supervision_notice#2",
            "E3/supervision_notice#3",
        ]
        times = [e.scheduled_at for e in events if isinstance(e, EscalationRaisedV1) and e.step_code == "E3"]
        assert times == [at(2026, 11, 23, h) for h in (14, 16, 18, 20)]
        assert clock.next_due_at is None

    def test_a_clock_armed_late_fires_on_its_first_tick(self) -> None:
        clock, _ = arm_clock(dispatched(at(2026, 11, 23, 9)), TENANT, CRITICAL, CAL)
        clock, events = tick(clock, at(2026, 11, 23, 11, 45), CRITICAL, CAL)
        assert summary(events) == ["sla.warned", "E1/reminder", "sla.breached", "E2/overdue_notice"]
        assert clock.next_due_at == at(2026, 11, 23, 13)

    def test_the_policy_snapshot_must_match(self) -> None:
        edited = replace(STANDARD, limit=Duration.working_days(3), version=2)
        with pytest.raises(ClockError) as err:
            tick(armed(), at(2026, 11, 30, 18), edited, CAL)
        assert err.value.code == "policy_mismatch"


class TestCalendarGap:
    """A ladder step that needs 2027 data waits for it without holding up anything earlier."""

    def test_a_step_in_an_unknown_year_waits_then_fires_once_the_data_is_entered(self) -> None:
        clock = armed(when=at(2026, 12, 14, 10))
        assert clock.due_at == at(2026, 12, 21, 17, 30)
        clock, events = run_timer(clock, STANDARD, at(2026, 12, 31, 23))
        assert summary(events)[-2:] == ["E3/supervision_notice", "E4/pinned_supervision"]
        # E6 (breach + 10 wd) runs into 2027, which nobody has data for yet.
        assert clock.next_step == 4 and clock.next_step_at is None
        assert clock.calendar_gap == date(2027, 1, 1)
        assert clock.next_due_at == at(2027, 1, 1)
        with pytest.raises(CalendarGapError):
            tick(clock, at(2027, 1, 1, 0, 5), STANDARD, CAL)
        # Ops enter the State Council notice; the same clock now knows when E6 is due.
        with_2027 = WorkCalendar(overrides={date(2027, 1, 1): False}, override_years={2027})
        clock, nothing = tick(clock, at(2027, 1, 1, 0, 5), STANDARD, with_2027)
        assert nothing == []
        assert clock.calendar_gap is None
        assert clock.next_due_at == at(2027, 1, 5, 17, 30)
        clock, events = tick(clock, at(2027, 1, 5, 17, 30), STANDARD, with_2027)
        assert summary(events) == ["E6/interview"]


class TestExtend:
    def test_extension_before_the_warning_moves_everything(self) -> None:
        clock, events = extend(armed(), at(2026, 11, 25, 10), STANDARD, CAL, until=at(2026, 12, 4, 17, 30))
        assert clock.due_at == at(2026, 12, 4, 17, 30)
        assert clock.warn_at == at(2026, 12, 3, 17, 30)
        assert clock.next_due_at == clock.warn_at
        assert clock.due_source == "extension" and clock.extension_no == 1
        assert events == [
            SlaClockExtendedV1(
                ticket_id=TICKET_ID,
                ticket_no="GL-20261123-0042",
                unit_code="XH-CG-01",
                policy_key="standard-5wd",
                previous_due_at=at(2026, 11, 30, 17, 30),
                due_at=at(2026, 12, 4, 17, 30),
                warn_at=at(2026, 12, 3, 17, 30),
                extended_at=at(2026, 11, 25, 10),
                extension_no=1,
                was_breached=False,
            )
        ]
        _, nothing = tick(clock, at(2026, 11, 30, 18), STANDARD, CAL)
        assert nothing == []

    def test_extension_after_the_breach_re_arms_the_ladder(self) -> None:
        clock, _ = tick(armed(), at(2026, 11, 30, 17, 30), STANDARD, CAL)
        assert clock.colour == "red" and clock.level == "E2"
        clock, events = extend(clock, at(2026, 12, 1, 10), STANDARD, CAL, working_days=5)
        assert clock.due_at == at(2026, 12, 7, 17, 30)  # 5 wd after the old deadline
        assert clock.warn_at == at(2026, 12, 4, 17, 30)
        assert clock.colour == "green" and clock.level is None and clock.next_step == 0
        assert isinstance(events[0], SlaClockExtendedV1) and events[0].was_breached
        clock, later = run_timer(clock, STANDARD, at(2026, 12, 8))
        assert summary(later) == ["sla.warned", "E1/reminder", "sla.breached", "E2/overdue_notice"]
        assert {e.extension_no for e in later if isinstance(e, SlaWarnedV1 | SlaBreachedV1 | EscalationRaisedV1)} == {1}
        assert clock.next_due_at == at(2026, 12, 8, 17, 30)  # E3, breach + 1 wd

    def test_extension_after_the_warning_keeps_it_if_the_new_warning_is_already_past(self) -> None:
        clock, _ = tick(armed(), at(2026, 11, 27, 17, 30), STANDARD, CAL)
        clock, _ = extend(clock, at(2026, 11, 30, 11), STANDARD, CAL, until=at(2026, 12, 1, 10))
        assert clock.warn_at == at(2026, 11, 30, 10)
        assert clock.warned and clock.level == "E1"
        assert clock.next_due_at == at(2026, 12, 1, 10)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"until": at(2026, 12, 4), "working_days": 1},
            {"until": at(2026, 11, 30, 12)},  # earlier than the deadline
            {"working_days": 0},
        ],
    )
    def test_bad_extensions_are_refused(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ClockError) as err:
            extend(armed(), at(2026, 11, 25, 10), STANDARD, CAL, **kwargs)
        assert err.value.code == "bad_extension"

    def test_extension_must_end_in_the_future(self) -> None:
        with pytest.raises(ClockError):
            extend(armed(), at(2026, 12, 10), STANDARD, CAL, until=at(2026, 12, 4, 17, 30))


class TestPauseResume:
    def test_paused_time_moves_the_deadlines(self) -> None:
        clock, events = pause(armed(), at(2026, 11, 24, 9), STANDARD, CAL, reason="platform_review")
        assert clock.state == "paused" and clock.next_due_at is None
        assert summary(events) == ["sla.clock_paused"]
        assert isinstance(events[0], SlaClockPausedV1) and events[0].reason == "platform_review"
        _, nothing = tick(clock, at(2026, 12, 20), STANDARD, CAL)
        assert nothing == []
        clock, events = resume(clock, at(2026, 11, 25, 9), STANDARD, CAL)  # one working day (7 h) later
        assert clock.state == "running"
        assert clock.warn_at == at(2026, 11, 30, 17, 30)
        assert clock.due_at == at(2026, 12, 1, 17, 30)
        assert clock.paused_for == timedelta(hours=7)
        assert clock.next_due_at == clock.warn_at
        assert events == [
            SlaClockResumedV1(
                ticket_id=TICKET_ID,
                ticket_no="GL-20261123-0042",
                unit_code="XH-CG-01",
                policy_key="standard-5wd",
                paused_at=at(2026, 11, 24, 9),
                resumed_at=at(2026, 11, 25, 9),
                warn_at=at(2026, 11, 30, 17, 30),
                due_at=at(2026, 12, 1, 17, 30),
            )
        ]

    def test_a_weekend_pause_costs_no_working_time(self) -> None:
        clock, _ = pause(armed(), at(2026, 11, 27, 18), STANDARD, CAL)
        clock, _ = resume(clock, at(2026, 11, 30, 9), STANDARD, CAL)
        assert clock.due_at == at(2026, 11, 30, 17, 30)
        assert clock.paused_for == timedelta(0)

    def test_pause_first_fires_what_was_already_due(self) -> None:
        _, events = pause(armed(), at(2026, 11, 30, 18), STANDARD, CAL)
        assert summary(events) == [
            "sla.warned",
            "E1/reminder",
            "sla.breached",
            "E2/overdue_notice",
            "sla.clock_paused",
        ]

    def test_a_pause_after_the_breach_delays_the_rest_of_the_ladder(self) -> None:
        clock, _ = tick(armed(), at(2026, 11, 30, 17, 30), STANDARD, CAL)
        assert clock.next_due_at == at(2026, 12, 1, 17, 30)
        clock, _ = pause(clock, at(2026, 12, 1, 9), STANDARD, CAL)
        clock, _ = resume(clock, at(2026, 12, 3, 9), STANDARD, CAL)  # 2 working days
        assert clock.due_at == at(2026, 11, 30, 17, 30)  # the breach stands
        assert clock.held_after_breach == timedelta(hours=14)
        assert clock.next_due_at == at(2026, 12, 3, 17, 30)  # E3
        clock, events = run_timer(clock, STANDARD, at(2026, 12, 31))
        raised = [e for e in events if isinstance(e, EscalationRaisedV1)]
        assert [(e.step_code, e.scheduled_at) for e in raised] == [
            ("E3", at(2026, 12, 3, 17, 30)),
            ("E4", at(2026, 12, 9, 17, 30)),
            ("E6", at(2026, 12, 16, 17, 30)),
        ]

    def test_natural_hour_clocks_pause_in_natural_time(self) -> None:
        clock, _ = pause(armed(CRITICAL), at(2026, 11, 23, 10, 30), CRITICAL, CAL)
        clock, _ = resume(clock, at(2026, 11, 23, 20, 30), CRITICAL, CAL)
        assert clock.due_at == at(2026, 11, 23, 22)

    def test_pause_and_resume_are_idempotent(self) -> None:
        paused, _ = pause(armed(), at(2026, 11, 24, 9), STANDARD, CAL)
        assert pause(paused, at(2026, 11, 24, 10), STANDARD, CAL) == (paused, [])
        running = armed()
        assert resume(running, at(2026, 11, 24, 10), STANDARD, CAL) == (running, [])

    def test_resume_before_pause_is_refused(self) -> None:
        paused, _ = pause(armed(), at(2026, 11, 24, 9), STANDARD, CAL)
        with pytest.raises(ClockError):
            resume(paused, at(2026, 11, 24, 8), STANDARD, CAL)


class TestStop:
    def test_stop_in_time(self) -> None:
        clock, events = stop(armed(), at(2026, 11, 26, 15), reason="closed")
        assert clock.state == "stopped" and clock.next_due_at is None
        assert events == [
            SlaClockStoppedV1(
                ticket_id=TICKET_ID,
                ticket_no="GL-20261123-0042",
                unit_code="XH-CG-01",
                policy_key="standard-5wd",
                started_at=MONDAY_10,
                due_at=at(2026, 11, 30, 17, 30),
                stopped_at=at(2026, 11, 26, 15),
                on_time=True,
                reason="closed",
            )
        ]

    def test_stop_late_and_nothing_fires_afterwards(self) -> None:
        clock, events = stop(armed(), at(2026, 12, 2, 10))
        assert isinstance(events[0], SlaClockStoppedV1) and not events[0].on_time
        assert tick(clock, at(2026, 12, 31), STANDARD, CAL) == (clock, [])
        assert stop(clock, at(2026, 12, 3)) == (clock, [])
        assert extend(clock, at(2026, 12, 3), STANDARD, CAL, working_days=3) == (clock, [])
        assert pause(clock, at(2026, 12, 3), STANDARD, CAL) == (clock, [])

    def test_a_paused_clock_can_stop(self) -> None:
        paused, _ = pause(armed(), at(2026, 11, 24, 9), STANDARD, CAL)
        clock, events = stop(paused, at(2026, 11, 24, 10))
        assert clock.state == "stopped" and clock.paused_at is None
        assert summary(events) == ["sla.clock_stopped"]


def test_domain_imports_nothing_that_does_io() -> None:
    """House style G2: domain.py stays pure."""
    forbidden = {"sqlmodel", "sqlalchemy", "aiokafka", "httpx", "prometheus_client", "asyncpg", "fastapi"}
    tree = ast.parse(Path(escalation.domain.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & forbidden


def test_new_events_are_registered_and_on_the_sla_topic() -> None:
    from gridline_contracts.catalogue import render
    from gridline_contracts.registry import lookup
    from gridline_contracts.topics import SLA, topic_for

    for cls in (
        SlaWarnedV1,
        SlaBreachedV1,
        EscalationRaisedV1,
        SlaClockExtendedV1,
        SlaClockPausedV1,
        SlaClockResumedV1,
        SlaClockStoppedV1,
    ):
        assert lookup(cls.TYPE, cls.VERSION) is cls
        assert topic_for(cls) is SLA
    assert "sla.escalated" in render()


class TestSignClockAndRounds:
    def test_a_sign_clock_announces_nothing_and_its_deadline_rides_on_the_handling_start(self) -> None:
        sign_policy = DEFAULT_POLICIES["sign-1wd"]
        sign, events = arm_clock(dispatched(), TENANT, sign_policy, CAL, kind="sign")
        assert events == [] and sign.kind == "sign" and sign.due_at == at(2026, 11, 24, 17, 30)
        _, started = arm_clock(dispatched(), TENANT, STANDARD, CAL, sign_due_at=sign.due_at)
        assert isinstance(started[0], SlaClockStartedV1)
        assert started[0].sign_due_at == sign.due_at and started[0].clock == "handle" and started[0].round == 0

    def test_a_sign_clock_warns_at_half_its_window_with_its_kind_on_the_event(self) -> None:
        sign, _ = arm_clock(dispatched(), TENANT, DEFAULT_POLICIES["sign-1wd"], CAL, kind="sign")
        _, events = tick(sign, at(2026, 11, 24, 13, 30), DEFAULT_POLICIES["sign-1wd"], CAL)
        assert [type(e) for e in events] == [SlaWarnedV1, EscalationRaisedV1]
        assert all(e.clock == "sign" for e in events)

    def test_rearm_starts_a_fresh_window_as_the_next_round(self) -> None:
        clock, _ = arm_clock(dispatched(), TENANT, STANDARD, CAL)
        stopped, _ = stop(clock, at(2026, 11, 25, 10), "replied")
        new, events = escalation.domain.rearm(stopped, at(2026, 11, 26, 15), STANDARD, CAL, unit_code="XH-CG-02")
        assert (new.round, new.kind, new.unit_code, new.state) == (1, "handle", "XH-CG-02", "running")
        assert new.due_at == at(2026, 12, 3, 17, 30)  # Fri 27 … Thu 3 Dec
        assert isinstance(events[0], SlaClockStartedV1) and events[0].round == 1

    def test_rearm_refuses_a_clock_still_running(self) -> None:
        clock, _ = arm_clock(dispatched(), TENANT, STANDARD, CAL)
        with pytest.raises(ClockError) as err:
            escalation.domain.rearm(clock, at(2026, 11, 26, 15), STANDARD, CAL)
        assert err.value.code == "clock_still_running"


class TestVetoCategories:
    def test_a_veto_category_goes_to_the_top_of_the_ladder_at_once(self) -> None:
        veto = replace(STANDARD, key="xihu-veto", veto_categories=("0901",))  # 0901: 群体性事件 (tenant code)
        e = replace_dispatch(category_code="0901")
        clock, _ = arm_clock(e, TENANT, veto, CAL)
        clock, events = tick(clock, MONDAY_10, veto, CAL)
        assert [(type(x), getattr(x, "step_code", None)) for x in events] == [(EscalationRaisedV1, "E6")]
        assert clock.level == "E6" and clock.next_step == len(veto.ladder)

    def test_other_categories_climb_as_usual(self) -> None:
        veto = replace(STANDARD, key="xihu-veto", veto_categories=("0901",))
        clock, _ = arm_clock(dispatched(), TENANT, veto, CAL)
        _, events = tick(clock, MONDAY_10, veto, CAL)
        assert events == []


def replace_dispatch(**changes: Any) -> TicketDispatchedV1:
    return dispatched().model_copy(update=changes)


class TestAcknowledge:
    def test_acknowledging_a_repeating_step_stops_its_repeats(self) -> None:
        start = at(2026, 11, 23, 10)
        clock, _ = arm_clock(dispatched(start, key="critical-2h"), TENANT, CRITICAL, CAL)
        clock, events = tick(clock, start + timedelta(hours=4, minutes=1), CRITICAL, CAL)
        assert [getattr(e, "step_code", None) for e in events if isinstance(e, EscalationRaisedV1)] == [
            "E1",
            "E2",
            "E3",
        ]
        acked, out = escalation.domain.acknowledge(
            clock, start + timedelta(hours=4, minutes=5), CRITICAL, CAL, "督查组-王"
        )
        assert out[0].repeats_cancelled == 3 and out[0].step_code == "E3"  # type: ignore[union-attr]
        assert acked.next_due_at is None
        _, later = tick(acked, start + timedelta(hours=12), CRITICAL, CAL)
        assert later == []

    def test_nothing_to_acknowledge_before_a_step_repeats(self) -> None:
        clock, _ = arm_clock(dispatched(), TENANT, STANDARD, CAL)
        with pytest.raises(ClockError) as err:
            escalation.domain.acknowledge(clock, MONDAY_10, STANDARD, CAL, "督查组-王")
        assert err.value.code == "nothing_to_acknowledge"
