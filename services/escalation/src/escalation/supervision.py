"""Supervision records (督办单, 挂牌督办, 约谈, 问责) opened by ladder steps, closed by 销号. Pure.

A ladder step whose action is a formal supervision opens a record with its own deadline (the unit
must report back within it; domain §1.5: 督办 items 3 working days) and recipients. A supervisor
closes it (销号) only with a verification note: the record says who verified and when.

The report-back deadline is a durable timer (``deadline_store``): a record announces itself once
(``supervision.opened``), and if 销号 has not happened by ``due_at`` it fires ``supervision.overdue``
once, to the record's recipients plus the unit head, the grid head and the 包抓 sponsor (the
people a 督办单 is addressed to, issue 5). 销号 publishes ``supervision.closed``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import cast, get_args

from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.escalation import (
    EscalationRaisedV1,
    RecipientRole,
    SupervisionClosedV1,
    SupervisionOpenedV1,
    SupervisionOverdueV1,
)

# Ladder actions that open a record, with the record kind.
RECORD_KINDS = {
    "supervision_notice": "督办单",
    "pinned_supervision": "挂牌督办",
    "interview": "约谈",
    "accountability": "问责",
}
REPORT_BACK_WORKING_DAYS = 3
# Whoever the ladder step named, an overdue record also goes to these (issue 5: unit head, grid head,
# 包抓 sponsor).
OVERDUE_ALSO_TO: tuple[RecipientRole, ...] = ("unit_head", "grid_head", "sponsor_unit")
_ROLES = frozenset(get_args(RecipientRole))


def _roles(names: tuple[str, ...] | list[str]) -> list[RecipientRole]:
    return [cast(RecipientRole, r) for r in dict.fromkeys(names) if r in _ROLES]


class SupervisionError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Supervision:
    id: uuid.UUID
    tenant: str
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    kind: str
    step_code: str
    recipients: tuple[str, ...]
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None = None
    verified_by: str | None = None
    verification: str | None = None
    overdue_at: datetime | None = None  # when supervision.overdue fired (once), if it did


def record_id(
    ticket_id: uuid.UUID, clock: str, round: int, extension_no: int, step_index: int, repeat_no: int
) -> uuid.UUID:
    """The id of the record a step occurrence opens: the same step can never open two.

    An MD5-based UUID (not uuid5) because the timer's set-based SQL derives the same id with ``md5()``.
    """
    key = f"gridline:supervision:{ticket_id}:{clock}:{round}:{extension_no}:{step_index}:{repeat_no}"
    return uuid.UUID(hashlib.md5(key.encode()).hexdigest())


def report_back_due(scheduled_at: datetime, calendar: WorkCalendar) -> tuple[datetime, date | None]:
    """The report-back deadline of a record whose step fell due at ``scheduled_at``, and the missing
    calendar day if it had to be counted Monday–Friday (the caller alerts; the step is not held up).

    Counted from when the step fell due, not when the timer got to it: a late timer gives no extra days.
    """
    try:
        return calendar.add_working_days(scheduled_at, REPORT_BACK_WORKING_DAYS), None
    except CalendarGapError as gap:
        rough = WorkCalendar(calendar.tz.key, fallback="weekends_only")
        return rough.add_working_days(scheduled_at, REPORT_BACK_WORKING_DAYS), gap.day


def open_for(tenant: str, e: EscalationRaisedV1, calendar: WorkCalendar) -> Supervision | None:
    """The record a raised ladder step opens, or None for reminders and notices."""
    kind = RECORD_KINDS.get(e.action)
    if kind is None:
        return None
    due, _ = report_back_due(e.scheduled_at, calendar)
    return Supervision(
        id=record_id(e.ticket_id, e.clock, e.round, e.extension_no, e.step_index, e.repeat_no),
        tenant=tenant,
        ticket_id=e.ticket_id,
        ticket_no=e.ticket_no,
        unit_code=e.unit_code,
        kind=kind,
        step_code=e.step_code,
        recipients=tuple(e.recipients),
        opened_at=e.raised_at,
        due_at=due,
    )


def close(s: Supervision, at: datetime, verified_by: str, verification: str) -> Supervision:
    """销号: only an open record, only with who verified and what they found."""
    if s.closed_at is not None:
        raise SupervisionError("already_closed", f"{s.kind} 已于 {s.closed_at.isoformat()} 销号")
    if not verified_by.strip() or not verification.strip():
        raise SupervisionError("verification_required", "销号须填写核查人和核查情况")
    return replace(s, closed_at=at, verified_by=verified_by.strip(), verification=verification.strip())


def overdue_recipients(recipients: tuple[str, ...]) -> list[RecipientRole]:
    """The record's own recipients, then ``OVERDUE_ALSO_TO``, each once (unknown roles dropped)."""
    return _roles([*recipients, *OVERDUE_ALSO_TO])


def opened_event(s: Supervision, grid_code: str | None) -> SupervisionOpenedV1:
    return SupervisionOpenedV1(
        supervision_id=s.id,
        ticket_id=s.ticket_id,
        ticket_no=s.ticket_no,
        unit_code=s.unit_code,
        grid_code=grid_code,
        kind=s.kind,
        step_code=s.step_code,
        recipients=_roles(s.recipients),
        opened_at=s.opened_at,
        due_at=s.due_at,
    )


def overdue(s: Supervision, now: datetime, grid_code: str | None) -> SupervisionOverdueV1 | None:
    """The overdue event of an open record whose deadline passed at ``now``, else None (closed or not due)."""
    if s.closed_at is not None or now < s.due_at:
        return None
    return SupervisionOverdueV1(
        supervision_id=s.id,
        ticket_id=s.ticket_id,
        ticket_no=s.ticket_no,
        unit_code=s.unit_code,
        grid_code=grid_code,
        kind=s.kind,
        step_code=s.step_code,
        recipients=overdue_recipients(s.recipients),
        opened_at=s.opened_at,
        due_at=s.due_at,
        detected_at=now,
    )


def closed_event(s: Supervision) -> SupervisionClosedV1:
    """``supervision.closed`` of a record ``close`` returned."""
    assert s.closed_at is not None and s.verified_by is not None
    return SupervisionClosedV1(
        supervision_id=s.id,
        ticket_id=s.ticket_id,
        ticket_no=s.ticket_no,
        unit_code=s.unit_code,
        kind=s.kind,
        step_code=s.step_code,
        opened_at=s.opened_at,
        due_at=s.due_at,
        closed_at=s.closed_at,
        verified_by=s.verified_by,
        on_time=s.closed_at <= s.due_at,
    )
