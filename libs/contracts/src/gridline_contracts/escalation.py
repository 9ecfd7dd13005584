"""SLA clock events, owned by the escalation service (topic ``escalation.sla.v1``).

A clock's colour follows domain §1.4: ``sla.warned`` is the 黄牌 (yellow, deadline near),
``sla.breached`` the 红牌 (red, overdue). ``sla.escalated`` is one rung of the supervision ladder
(domain §5.2): who must be told, and what kind of supervision it is. Every timed event carries both
the moment it was scheduled for and the moment it was detected, which differ after a backlog or a
restart (late, never lost). ``extension_no`` tells the same milestone apart before and after an
approved extension re-arms it.

A ticket has two kinds of clock (``clock``): ``sign`` times 签收 and ``handle`` times 办理 up to the
reply. ``round`` counts the clocks of that kind the ticket has had: a re-dispatch after an approved
退单, a rejected reply or a 重办 arms a new round. Both fields were added later with defaults, so a
message without them reads as the handling clock of round 0.

Supervision records (督办单, 挂牌督办, 约谈, 问责) a ladder step opens have their own report-back
deadline: ``supervision.opened``, ``supervision.overdue`` (the deadline passed before 销号, once per
record) and ``supervision.closed`` (销号). Platform reviews (of a 退单 request, a 延期 request, a
reply) are timed too, against the reviewer rather than the unit: ``review.clock_started``,
``review.warned``, ``review.breached``, ``review.escalated`` and ``review.clock_stopped``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from .envelope import EventData
from .registry import register

# 催办 · 催办通知书 · 督办单 · 挂牌督办 · 通报 · 约谈 · 问责
EscalationAction = Literal[
    "reminder",
    "overdue_notice",
    "supervision_notice",
    "pinned_supervision",
    "circular",
    "interview",
    "accountability",
]
ClockKind = Literal["sign", "handle"]

# 联络员 · 分管负责人 · 主要负责人 · 网格长 · 街道领导 · 包抓单位 · 包抓领导 · 区领导 · 督查组/12345 中心
RecipientRole = Literal[
    "unit_liaison",
    "unit_deputy_head",
    "unit_head",
    "grid_head",
    "street_leader",
    "sponsor_unit",
    "sponsor_leader",
    "district_leader",
    "supervisor",
]


# The review being timed: 退单 review, 延期 review, reply (办理结果) review.
ReviewKind = Literal["return", "extension", "reply"]
# Who is told about a late review: 派单/审核员 (the reviewer) and the 督查组 above them. Never the unit.
ReviewRecipientRole = Literal["dispatcher", "supervisor"]


class SlaClockStartedV1(EventData):
    TYPE = "sla.clock_started"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    time_limit: str  # human form of the policy, e.g. "3 working days"
    sign_due_at: datetime | None = None  # the 签收 deadline, when a sign clock runs beside this one


class SlaWarnedV1(EventData):
    """黄牌: the time left reached the policy's warning threshold (``warn_at``)."""

    TYPE = "sla.warned"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    grid_code: str | None = None
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    warn_at: datetime
    due_at: datetime
    detected_at: datetime
    extension_no: int = 0


class SlaBreachedV1(EventData):
    """红牌: the deadline ``due_at`` passed with the clock still running."""

    TYPE = "sla.breached"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    grid_code: str | None = None
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    due_at: datetime
    detected_at: datetime
    extension_no: int = 0


class EscalationRaisedV1(EventData):
    """One rung of the supervision ladder fired; notify tells every role in ``recipients``.

    ``step_code`` is the ladder stage (E1…E7, domain §5.2); ``repeat_no`` counts repeats of a
    repeating top step (0 = first time). ``(ticket_id, extension_no, step_index, repeat_no)`` is unique.
    """

    TYPE = "sla.escalated"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    grid_code: str | None = None
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    step_index: int
    step_code: str
    action: EscalationAction
    recipients: list[RecipientRole]
    repeat_no: int = 0
    scheduled_at: datetime
    raised_at: datetime
    due_at: datetime
    extension_no: int = 0


class SlaClockExtendedV1(EventData):
    """An approved 延期 moved the deadline; the new ``due_at`` is the ticket's expected time."""

    TYPE = "sla.clock_extended"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    previous_due_at: datetime
    due_at: datetime
    warn_at: datetime
    extended_at: datetime
    extension_no: int
    was_breached: bool


class SlaClockPausedV1(EventData):
    """The clock stopped counting (e.g. waiting for platform review); nothing fires until it resumes."""

    TYPE = "sla.clock_paused"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    paused_at: datetime
    reason: str | None = None


class SlaClockResumedV1(EventData):
    """The clock counts again; the paused time was added to every deadline not yet reached."""

    TYPE = "sla.clock_resumed"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    paused_at: datetime
    resumed_at: datetime
    warn_at: datetime
    due_at: datetime


class SlaClockStoppedV1(EventData):
    """The clock ended (办结, or the step it timed is done); ``on_time`` feeds 按期办结率."""

    TYPE = "sla.clock_stopped"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    started_at: datetime
    due_at: datetime
    stopped_at: datetime
    on_time: bool
    reason: str | None = None


class SlaAcknowledgedV1(EventData):
    """Someone acknowledged the ladder step the clock is on (PagerDuty semantics): its repeats stop.

    ``by`` is a staff or unit id, never a person's contact data."""

    TYPE = "sla.acknowledged"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind = "handle"
    round: int = 0
    step_code: str
    repeats_cancelled: int
    acknowledged_at: datetime
    by: str


class SupervisionOpenedV1(EventData):
    """A ladder step opened a supervision record; the unit must report back by ``due_at``."""

    TYPE = "supervision.opened"
    VERSION = 1

    supervision_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    grid_code: str | None = None
    kind: str  # 督办单 · 挂牌督办 · 约谈 · 问责
    step_code: str
    recipients: list[RecipientRole]
    opened_at: datetime
    due_at: datetime


class SupervisionOverdueV1(EventData):
    """The record's report-back deadline passed before 销号 (once per record; ``detected_at`` may be late)."""

    TYPE = "supervision.overdue"
    VERSION = 1

    supervision_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    grid_code: str | None = None
    kind: str
    step_code: str
    recipients: list[RecipientRole]
    opened_at: datetime
    due_at: datetime
    detected_at: datetime


class SupervisionClosedV1(EventData):
    """销号: a supervisor verified the rectification. ``verified_by`` is a staff id, not a name."""

    TYPE = "supervision.closed"
    VERSION = 1

    supervision_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    kind: str
    step_code: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime
    verified_by: str
    on_time: bool  # closed by the report-back deadline


class ReviewClockStartedV1(EventData):
    """A platform review was requested; the reviewer must decide by ``due_at``."""

    TYPE = "review.clock_started"
    VERSION = 1

    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None = None
    review: ReviewKind
    policy_key: str
    requested_at: datetime
    warn_at: datetime
    due_at: datetime
    time_limit: str


class ReviewWarnedV1(EventData):
    """黄牌 of a review: half its time is gone; the reviewer is reminded."""

    TYPE = "review.warned"
    VERSION = 1

    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None = None
    review: ReviewKind
    recipients: list[ReviewRecipientRole]
    warn_at: datetime
    due_at: datetime
    detected_at: datetime


class ReviewBreachedV1(EventData):
    """红牌 of a review: the review deadline passed undecided."""

    TYPE = "review.breached"
    VERSION = 1

    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None = None
    review: ReviewKind
    recipients: list[ReviewRecipientRole]
    due_at: datetime
    detected_at: datetime


class ReviewEscalatedV1(EventData):
    """Still undecided ``escalate_at`` (policy: a while after the deadline): the supervisor is told too."""

    TYPE = "review.escalated"
    VERSION = 1

    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None = None
    review: ReviewKind
    recipients: list[ReviewRecipientRole]
    due_at: datetime
    escalate_at: datetime
    detected_at: datetime


class ReviewClockStoppedV1(EventData):
    """The review happened (or the ticket closed): ``on_time`` says whether it beat ``due_at``."""

    TYPE = "review.clock_stopped"
    VERSION = 1

    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None = None
    review: ReviewKind
    requested_at: datetime
    due_at: datetime
    stopped_at: datetime
    on_time: bool
    reason: str


register(
    SlaClockStartedV1,
    SlaWarnedV1,
    SlaBreachedV1,
    EscalationRaisedV1,
    SlaClockExtendedV1,
    SlaClockPausedV1,
    SlaClockResumedV1,
    SlaClockStoppedV1,
    SlaAcknowledgedV1,
    SupervisionOpenedV1,
    SupervisionOverdueV1,
    SupervisionClosedV1,
    ReviewClockStartedV1,
    ReviewWarnedV1,
    ReviewBreachedV1,
    ReviewEscalatedV1,
    ReviewClockStoppedV1,
)
