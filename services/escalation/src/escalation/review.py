"""Platform review clocks as pure decisions: the 审核 of a 退单 request, a 延期 request or a reply.

A review is timed against the reviewer (派单/审核员), not the unit: the unit has done its part by
asking. ``start`` arms a clock from the limit the ticket's policy snapshot gives for that review
(``SlaPolicy.review_limit``); ``tick`` fires its milestones in order, each once — 黄牌 at half the
window (measured as the limit counts time), 红牌 at the deadline, and an escalation to the
supervisor ``review_escalate_after`` later — and ``stop`` ends it when the review happens. As with
the SLA clocks, a late ``tick`` fires the missed milestones late, in order, and a second ``tick`` at
the same ``now`` fires nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.escalation import (
    ReviewBreachedV1,
    ReviewClockStartedV1,
    ReviewClockStoppedV1,
    ReviewEscalatedV1,
    ReviewKind,
    ReviewRecipientRole,
    ReviewWarnedV1,
)

from .policy import SlaPolicy, measure

ReviewEvent = ReviewClockStartedV1 | ReviewWarnedV1 | ReviewBreachedV1 | ReviewEscalatedV1 | ReviewClockStoppedV1

# Who hears of each milestone: the reviewer, then the 督查组 as well once it is escalated.
WARN_TO: tuple[ReviewRecipientRole, ...] = ("dispatcher",)
BREACH_TO: tuple[ReviewRecipientRole, ...] = ("dispatcher",)
ESCALATE_TO: tuple[ReviewRecipientRole, ...] = ("dispatcher", "supervisor")


@dataclass(frozen=True)
class ReviewClock:
    id: uuid.UUID
    tenant: str
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None
    review: ReviewKind
    policy_key: str
    policy_version: int
    time_limit: str
    requested_at: datetime
    warn_at: datetime
    due_at: datetime
    escalate_at: datetime
    stage: int = 0  # milestones fired so far: 1 warned, 2 breached, 3 escalated
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def next_due_at(self) -> datetime | None:
        """When ``tick`` next has something to do (what the timer table indexes)."""
        if self.stopped_at is not None or self.stage >= 3:
            return None
        return (self.warn_at, self.due_at, self.escalate_at)[self.stage]

    @property
    def colour(self) -> str:
        return ("green", "yellow", "red", "red")[self.stage]


def review_id(ticket_id: uuid.UUID, review: str, requested_at: datetime) -> uuid.UUID:
    """One clock per request: a redelivered request derives the same id and inserts nothing."""
    key = f"gridline:review:{ticket_id}:{review}:{requested_at.timestamp()!r}"
    return uuid.UUID(hashlib.md5(key.encode()).hexdigest())


def start(
    *,
    tenant: str,
    ticket_id: uuid.UUID,
    ticket_no: str,
    unit_code: str | None,
    review: ReviewKind,
    requested_at: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
) -> tuple[ReviewClock | None, list[ReviewEvent]]:
    """Arm the review clock of a request made at ``requested_at``; None when the policy does not time it.

    Raises CalendarGapError when the limit needs calendar data nobody has (the caller decides).
    """
    limit = policy.review_limit(review)
    if limit is None:
        return None, []
    at = requested_at.astimezone(calendar.tz)
    due = limit.after(at, calendar)
    window = measure(limit.limit.kind, at, due, calendar)
    if limit.limit.is_working_time and window.total_seconds() > 0:
        warn = calendar.add_working_hours(at, window / 2)
    else:
        warn = calendar.add_natural_hours(at, (due - at) / 2)
    warn = min(max(warn, at), due)
    rc = ReviewClock(
        id=review_id(ticket_id, review, requested_at),
        tenant=tenant,
        ticket_id=ticket_id,
        ticket_no=ticket_no,
        unit_code=unit_code,
        review=review,
        policy_key=policy.key,
        policy_version=policy.version,
        time_limit=limit.describe(),
        requested_at=at,
        warn_at=warn,
        due_at=due,
        escalate_at=policy.review_escalate_after.after(due, calendar),
    )
    started = ReviewClockStartedV1(
        review_id=rc.id,
        ticket_id=ticket_id,
        ticket_no=ticket_no,
        unit_code=unit_code,
        review=review,
        policy_key=policy.key,
        requested_at=at,
        warn_at=rc.warn_at,
        due_at=rc.due_at,
        time_limit=rc.time_limit,
    )
    return rc, [started]


def start_or_weekdays(
    policy: SlaPolicy, calendar: WorkCalendar, **request: Any
) -> tuple[ReviewClock | None, list[ReviewEvent], CalendarGapError | None]:
    """``start``, counting Monday–Friday when the calendar lacks the year (the gap is returned to alert
    on): a review deadline is not worth blocking the lifecycle event that carries it."""
    try:
        rc, events = start(policy=policy, calendar=calendar, **request)
        return rc, events, None
    except CalendarGapError as gap:
        rough = WorkCalendar(calendar.tz.key, fallback="weekends_only")
        rc, events = start(policy=policy, calendar=rough, **request)
        return rc, events, gap


def tick(rc: ReviewClock, now: datetime) -> tuple[ReviewClock, list[ReviewEvent]]:
    """Fire every milestone due at ``now``, in order, each once; a stopped clock fires nothing."""
    events: list[ReviewEvent] = []
    common: dict[str, Any] = {
        "review_id": rc.id,
        "ticket_id": rc.ticket_id,
        "ticket_no": rc.ticket_no,
        "unit_code": rc.unit_code,
        "review": rc.review,
        "due_at": rc.due_at,
        "detected_at": now,
    }
    while (due := rc.next_due_at) is not None and due <= now:
        if rc.stage == 0:
            events.append(ReviewWarnedV1(**common, recipients=list(WARN_TO), warn_at=rc.warn_at))
        elif rc.stage == 1:
            events.append(ReviewBreachedV1(**common, recipients=list(BREACH_TO)))
        else:
            events.append(ReviewEscalatedV1(**common, recipients=list(ESCALATE_TO), escalate_at=rc.escalate_at))
        rc = replace(rc, stage=rc.stage + 1)
    return rc, events


def stop(rc: ReviewClock, at: datetime, reason: str) -> tuple[ReviewClock, list[ReviewEvent]]:
    """The review happened (``reviewed``) or no longer matters (``closed`` …); stopping twice does nothing."""
    if rc.stopped_at is not None:
        return rc, []
    new = replace(rc, stopped_at=at, stop_reason=reason)
    stopped = ReviewClockStoppedV1(
        review_id=rc.id,
        ticket_id=rc.ticket_id,
        ticket_no=rc.ticket_no,
        unit_code=rc.unit_code,
        review=rc.review,
        requested_at=rc.requested_at,
        due_at=rc.due_at,
        stopped_at=at,
        on_time=at <= rc.due_at,
        reason=reason,
    )
    return new, [stopped]
