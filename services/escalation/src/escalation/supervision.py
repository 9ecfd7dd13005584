"""Supervision records (督办单, 挂牌督办, 约谈, 问责) opened by ladder steps, closed by 销号. Pure.

A ladder step whose action is a formal supervision opens a record with its own deadline (the unit
must report back within it; domain §1.5: 督办 items 3 working days) and recipients. A supervisor
closes it (销号) only with a verification note: the record says who verified and when.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from gridline_contracts.escalation import EscalationRaisedV1

from .calendar import WorkCalendar

# Ladder actions that open a record, with the record kind.
RECORD_KINDS = {
    "supervision_notice": "督办单",
    "pinned_supervision": "挂牌督办",
    "interview": "约谈",
    "accountability": "问责",
}
REPORT_BACK_WORKING_DAYS = 3


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


def open_for(tenant: str, e: EscalationRaisedV1, calendar: WorkCalendar) -> Supervision | None:
    """The record a raised ladder step opens, or None for reminders and notices.

    The id derives from the step occurrence, so the same step can never open two records."""
    kind = RECORD_KINDS.get(e.action)
    if kind is None:
        return None
    key = f"{e.ticket_id}:{e.clock}:{e.round}:{e.extension_no}:{e.step_index}:{e.repeat_no}"
    return Supervision(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"gridline:supervision:{key}"),
        tenant=tenant,
        ticket_id=e.ticket_id,
        ticket_no=e.ticket_no,
        unit_code=e.unit_code,
        kind=kind,
        step_code=e.step_code,
        recipients=tuple(e.recipients),
        opened_at=e.raised_at,
        due_at=calendar.add_working_days(e.raised_at, REPORT_BACK_WORKING_DAYS),
    )


def close(s: Supervision, at: datetime, verified_by: str, verification: str) -> Supervision:
    """销号: only an open record, only with who verified and what they found."""
    if s.closed_at is not None:
        raise SupervisionError("already_closed", f"{s.kind} 已于 {s.closed_at.isoformat()} 销号")
    if not verified_by.strip() or not verification.strip():
        raise SupervisionError("verification_required", "销号须填写核查人和核查情况")
    return replace(s, closed_at=at, verified_by=verified_by.strip(), verification=verification.strip())
