"""The 退单 window and platform review steps as policy data, review clocks, and supervision-record
deadlines and their events, as pure functions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from escalation import review
from escalation.policy import DEFAULT_POLICIES, Duration, PolicyError, SlaPolicy, TimeLimit
from escalation.supervision import (
    Supervision,
    close,
    closed_event,
    opened_event,
    overdue,
    overdue_recipients,
    report_back_due,
)
from gridline_calendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
TID = uuid.UUID("5a1e5c0f-7e11-4c0d-9a3b-1234567890ab")
STANDARD = DEFAULT_POLICIES["standard-5wd"]
CAL = WorkCalendar()


def sh(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


# -- policy: the 退单 window and the review limits ----------------------------------------------------


def test_defaults_give_a_two_working_day_return_window_and_one_day_reviews() -> None:
    assert STANDARD.return_window == TimeLimit(Duration.working_days(2))
    one_day = TimeLimit(Duration.working_days(1))
    assert all(STANDARD.review_limit(k) == one_day for k in ("return", "extension", "reply"))
    assert STANDARD.review_escalate_after == Duration.working_hours(4)


def test_the_new_limits_round_trip_and_old_stored_policies_read_with_the_defaults() -> None:
    p = replace(
        STANDARD,
        return_window=TimeLimit(Duration.working_hours(8), "same_day"),
        reply_review=TimeLimit(Duration.natural_hours(24)),
        extension_review=None,
    )
    back = SlaPolicy.from_dict(p.to_dict())
    assert back == p and back.review_limit("extension") is None
    old = {k: v for k, v in STANDARD.to_dict().items() if "review" not in k and k != "return_window"}
    assert SlaPolicy.from_dict(old).return_window == STANDARD.return_window


@pytest.mark.parametrize(
    "change",
    [
        {"return_window": {"limit": {"kind": "working_days", "amount": 0}}},
        {"return_window": {"limit": {"kind": "working_days", "amount": 1.5}}},
        {"return_review": {"limit": {"kind": "fortnights", "amount": 1}}},
        {"reply_review": {"limit": {"kind": "natural_hours", "amount": -2}}},
        {"extension_review": {"limit": {"kind": "working_days", "amount": 1}, "count_from": "yesterday"}},
        {"review_escalate_after": {"kind": "working_hours", "amount": 0}},
    ],
)
def test_bad_review_limits_are_refused_on_save(change: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        SlaPolicy.from_dict({**STANDARD.to_dict(), **change})


def test_unknown_review_kind_is_an_error() -> None:
    with pytest.raises(PolicyError):
        STANDARD.review_limit("appeal")


def test_return_window_end_counts_working_days_across_national_day() -> None:
    # Dispatched Wed 30 Sep 2026: 1–7 Oct are holidays, Thu 8 and Fri 9 the two working days.
    assert STANDARD.return_window_end(sh(2026, 9, 30, 10), CAL) == sh(2026, 10, 9, 17, 30)
    same_day = replace(STANDARD, return_window=TimeLimit(Duration.working_days(2), "same_day"))
    assert same_day.return_window_end(sh(2026, 9, 30, 10), CAL) == sh(2026, 10, 8, 17, 30)
    hours = replace(STANDARD, return_window=TimeLimit(Duration.natural_hours(48)))
    assert hours.return_window_end(sh(2026, 9, 30, 10), CAL) == sh(2026, 10, 2, 10)
    assert replace(STANDARD, return_window=None).return_window_end(sh(2026, 9, 30, 10), CAL) is None


# -- review clocks ------------------------------------------------------------------------------------


def started(policy: SlaPolicy = STANDARD, at: datetime | None = None, kind: Any = "return") -> review.ReviewClock:
    rc, events = review.start(
        tenant="330106",
        ticket_id=TID,
        ticket_no="GL-1",
        unit_code="330106005",
        review=kind,
        requested_at=at or sh(2026, 11, 23, 10),
        policy=policy,
        calendar=CAL,
    )
    assert rc is not None and [e.TYPE for e in events] == ["review.clock_started"]
    return rc


def test_a_review_is_due_by_its_limit_warns_halfway_and_escalates_after() -> None:
    rc = started()
    assert rc.due_at == sh(2026, 11, 24, 17, 30)  # 1 working day from the next day
    assert rc.warn_at == sh(2026, 11, 24, 9, 30)  # half of the 13 working hours in between
    assert rc.escalate_at == sh(2026, 11, 25, 14, 30)  # 4 working hours after the deadline
    assert rc.next_due_at == rc.warn_at and rc.colour == "green"
    hours = started(replace(STANDARD, reply_review=TimeLimit(Duration.natural_hours(24))), kind="reply")
    assert (hours.warn_at, hours.due_at) == (sh(2026, 11, 23, 22), sh(2026, 11, 24, 10))


def test_review_milestones_fire_in_order_once_each_to_the_reviewer_never_the_unit() -> None:
    rc = started()
    rc, events = review.tick(rc, rc.warn_at - timedelta(seconds=1))
    assert events == []
    rc, events = review.tick(rc, rc.warn_at)
    assert [e.TYPE for e in events] == ["review.warned"] and rc.colour == "yellow"
    assert review.tick(rc, rc.warn_at)[1] == []
    # A timer that was down for days fires the rest late, in order, once.
    late = rc.escalate_at + timedelta(days=3)
    rc, events = review.tick(rc, late)
    assert [e.TYPE for e in events] == ["review.breached", "review.escalated"]
    assert all(e.detected_at == late for e in events)  # type: ignore[union-attr]
    assert [e.recipients for e in events] == [["dispatcher"], ["dispatcher", "supervisor"]]  # type: ignore[union-attr]
    assert rc.next_due_at is None and review.tick(rc, late + timedelta(days=1))[1] == []


def test_stopping_a_review_ends_its_clock() -> None:
    rc = started()
    rc, events = review.stop(rc, sh(2026, 11, 23, 15), "reviewed")
    assert [e.TYPE for e in events] == ["review.clock_stopped"] and events[0].on_time  # type: ignore[union-attr]
    assert rc.next_due_at is None and review.tick(rc, sh(2026, 12, 31))[1] == []
    assert review.stop(rc, sh(2026, 11, 24), "closed") == (rc, [])
    _, events = review.stop(started(), sh(2026, 11, 25), "reviewed")
    assert not events[0].on_time  # type: ignore[union-attr]


def test_an_untimed_review_arms_nothing_and_a_redelivered_request_derives_the_same_id() -> None:
    rc, events = review.start(
        tenant="330106",
        ticket_id=TID,
        ticket_no="GL-1",
        unit_code=None,
        review="extension",
        requested_at=sh(2026, 11, 23, 10),
        policy=replace(STANDARD, extension_review=None),
        calendar=CAL,
    )
    assert (rc, events) == (None, [])
    assert started().id == started().id != started(at=sh(2026, 11, 23, 11)).id


def test_a_review_in_a_year_without_calendar_data_is_counted_monday_to_friday_and_reported() -> None:
    rc, _, gap = review.start_or_weekdays(
        STANDARD,
        CAL,
        tenant="330106",
        ticket_id=TID,
        ticket_no="GL-1",
        unit_code=None,
        review="reply",
        requested_at=sh(2027, 3, 5, 10),  # a Friday
    )
    assert gap is not None and rc is not None and rc.due_at == sh(2027, 3, 8, 17, 30)


# -- supervision-record deadlines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (sh(2026, 11, 23, 10), sh(2026, 11, 26, 17, 30)),  # an ordinary week: Tue, Wed, Thu
        (sh(2026, 9, 30, 10), sh(2026, 10, 10, 17, 30)),  # National Day: Thu 8, Fri 9, Sat 10 (调休)
        (sh(2026, 9, 24, 10), sh(2026, 9, 30, 17, 30)),  # 中秋 Fri 25 and the weekend: Mon–Wed
        (sh(2026, 9, 18, 10), sh(2026, 9, 22, 17, 30)),  # Sun 20 Sep is a 调休 working day
    ],
)
def test_report_back_deadline_counts_three_working_days_across_holidays_and_make_up_days(
    opened: datetime, due: datetime
) -> None:
    assert report_back_due(opened, CAL) == (due, None)


def test_report_back_deadline_without_calendar_data_counts_monday_to_friday_and_reports_the_day() -> None:
    due, gap = report_back_due(sh(2027, 1, 8, 10), CAL)  # a Friday
    assert due == sh(2027, 1, 13, 17, 30) and gap is not None and gap.year == 2027


def record(**changes: Any) -> Supervision:
    base = Supervision(
        id=uuid.uuid4(),
        tenant="330106",
        ticket_id=TID,
        ticket_no="GL-1",
        unit_code="330106005",
        kind="督办单",
        step_code="E3",
        recipients=("unit_head", "sponsor_unit", "supervisor"),
        opened_at=sh(2026, 11, 23, 10),
        due_at=sh(2026, 11, 26, 17, 30),
    )
    return replace(base, **changes)


def test_an_overdue_record_goes_to_its_recipients_and_the_unit_head_grid_head_and_sponsor() -> None:
    r = record()
    assert overdue(r, r.due_at - timedelta(seconds=1), "330106001001") is None
    e = overdue(r, r.due_at + timedelta(hours=5), "330106001001")
    assert e is not None and e.detected_at == r.due_at + timedelta(hours=5) and e.grid_code == "330106001001"
    assert e.recipients == ["unit_head", "sponsor_unit", "supervisor", "grid_head"]
    assert overdue_recipients(("nobody", "unit_head")) == ["unit_head", "grid_head", "sponsor_unit"]


def test_a_closed_record_never_fires_and_its_closure_says_whether_it_was_on_time() -> None:
    closed = close(record(), sh(2026, 11, 25, 9), "督查-01", "现场核实已整改")
    assert overdue(closed, sh(2026, 12, 31), None) is None
    e = closed_event(closed)
    assert e.on_time and e.verified_by == "督查-01" and e.TYPE == "supervision.closed"
    assert not closed_event(close(record(), sh(2026, 11, 27, 9), "督查-01", "已整改")).on_time
    opened = opened_event(record(recipients=("unit_head", "bogus")), None)
    assert opened.recipients == ["unit_head"] and opened.due_at == sh(2026, 11, 26, 17, 30)
