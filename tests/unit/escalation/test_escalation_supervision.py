"""Supervision records opened by ladder steps and closed by 销号, as pure functions."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from escalation.supervision import SupervisionError, close, open_for
from gridline_calendar import WorkCalendar
from gridline_contracts.escalation import EscalationRaisedV1

SH = ZoneInfo("Asia/Shanghai")
TID = uuid.UUID("5a1e5c0f-7e11-4c0d-9a3b-1234567890ab")


def raised(action: str, repeat_no: int = 0) -> EscalationRaisedV1:
    at = datetime(2026, 11, 23, 10, tzinfo=SH)
    return EscalationRaisedV1(
        ticket_id=TID,
        ticket_no="GL-20261123-0042",
        unit_code="XH-CG-01",
        policy_key="standard-5wd",
        step_index=2,
        step_code="E3",
        action=action,  # type: ignore[arg-type]
        recipients=["unit_head", "sponsor_unit"],
        repeat_no=repeat_no,
        scheduled_at=at,
        raised_at=at,
        due_at=at,
    )


def test_a_supervision_step_opens_a_record_due_in_three_working_days() -> None:
    r = open_for("330106", raised("supervision_notice"), WorkCalendar())
    assert r is not None and r.kind == "督办单" and r.recipients == ("unit_head", "sponsor_unit")
    assert r.due_at == datetime(2026, 11, 26, 17, 30, tzinfo=SH)  # Tue, Wed, Thu


def test_reminders_open_nothing_and_each_step_occurrence_has_its_own_id() -> None:
    assert open_for("330106", raised("reminder"), WorkCalendar()) is None
    a = open_for("330106", raised("pinned_supervision"), WorkCalendar())
    b = open_for("330106", raised("pinned_supervision"), WorkCalendar())
    c = open_for("330106", raised("pinned_supervision", repeat_no=1), WorkCalendar())
    assert a is not None and b is not None and c is not None
    assert a.id == b.id != c.id and a.kind == "挂牌督办"


def test_closing_needs_verification_and_happens_once() -> None:
    r = open_for("330106", raised("interview"), WorkCalendar())
    assert r is not None
    with pytest.raises(SupervisionError) as err:
        close(r, datetime(2026, 11, 25, tzinfo=SH), "督查组-王", "  ")
    assert err.value.code == "verification_required"
    done = close(r, datetime(2026, 11, 25, tzinfo=SH), "督查组-王", "现场核查已整改")
    assert done.closed_at is not None and done.verified_by == "督查组-王"
    with pytest.raises(SupervisionError) as err:
        close(done, datetime(2026, 11, 26, tzinfo=SH), "督查组-王", "再次")
    assert err.value.code == "already_closed"
