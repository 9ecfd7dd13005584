"""Work-order lifecycle events, owned by the intake service (topic ``intake.tickets.v1``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .envelope import EventData
from .registry import register

Channel = Literal["citizen", "hotline", "open311", "inspection"]
DemandType = Literal["consult", "help", "complaint", "report", "suggestion"]  # 咨询 求助 投诉 举报 建议
Priority = Literal["critical", "urgent", "normal"]  # 特急 紧急 一般


class GeoPoint(BaseModel):
    """A WGS-84 point; intake converts GCJ-02/BD-09 before anything travels."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    lon: float
    lat: float


class ReporterRef(BaseModel):
    """How to reach the reporter without carrying the phone number in clear.

    ``contact_token`` is the phone sealed with the transit key (AES-GCM); only notify can open it.
    ``masked_phone`` (138****0000) is what a handling unit may see, and is None when the reporter
    asked for confidentiality or the report is a 举报.
    ``caller_hash`` is an HMAC of the normalised phone under a per-tenant lookup key only intake
    holds: equal for the same caller of the same tenant, so routing can tell "same caller" for
    一事多报 without learning the number; absent for anonymous reports and older events.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    contact_token: str | None = None
    masked_phone: str | None = None
    confidential: bool = False
    anonymous: bool = False
    caller_hash: str | None = None


class OrderOrigin(BaseModel):
    """The integration an order came from and its own order id, so results can be pushed back to it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    integration: str
    external_id: str


class InspectionSite(BaseModel):
    """The 点位 a campaign finding (创城督查/测评) was made at; routing finds its 包抓 sponsor by it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    code: str | None = None
    name: str
    kind: str  # 农贸市场, 背街小巷, 老旧小区, …
    batch: str  # the inspection round (督查批次)


class TicketReceivedV1(EventData):
    TYPE = "ticket.received"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    channel: Channel
    category_code: str
    demand_type: DemandType | None = None
    priority: Priority = "normal"
    description: str
    location: GeoPoint | None = None
    address: str | None = None
    area_code: str | None = None
    reported_at: datetime
    received_at: datetime
    platform_due_at: datetime | None = None
    reporter: ReporterRef
    origin: OrderOrigin | None = None  # set for orders pushed by an integration (12345, Open311)
    site: InspectionSite | None = None  # set for campaign inspection findings


class TicketDispatchedV1(EventData):
    """The ticket is now with its 主办 unit; escalation arms the clock from ``dispatched_at``."""

    TYPE = "ticket.dispatched"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    category_code: str
    priority: Priority = "normal"
    unit_code: str
    co_unit_codes: list[str] = []
    grid_code: str | None = None
    sla_policy_key: str
    dispatched_at: datetime
    platform_due_at: datetime | None = None
    reporter: ReporterRef
    # 改派: the unit it was with before (it had not signed); None for a first dispatch.
    previous_unit_code: str | None = None


# The lifecycle of domain §1.3. Every transition intake applies is one of the events below; each
# carries where it came from and went to, who did it and when, so a consumer needs no other state.
TicketStatus = Literal[
    "received",  # 受理中 / 已受理
    "rejected",  # 不予受理
    "direct_closed",  # 直办
    "merged",  # 并单 (子单)
    "awaiting_manual",  # 待派单 (人工)
    "dispatched",  # 已派单, 待签收
    "return_requested",  # 退单申请, 待审核
    "accepted",  # 已签收, 办理中
    "extension_requested",  # 延期申请
    "replied",  # 已回复, 待审核
    "pending_callback",  # 待回访
    "closed",  # 办结
    "archived",  # 归档
]
ActorRole = Literal["citizen", "hotline", "platform", "dispatcher", "unit", "grid_staff", "supervisor", "system"]
Satisfaction = Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]


class Transition(EventData):
    """Fields every lifecycle transition carries (not an event itself: it has no TYPE)."""

    ticket_id: uuid.UUID
    ticket_no: str
    from_status: TicketStatus
    to_status: TicketStatus
    actor_role: ActorRole
    actor: str  # a unit code, staff id or integration id; never a citizen's personal data
    at: datetime
    unit_code: str | None = None  # the 主办 unit the ticket is with, if any
    note: str = ""


class TicketUpdatedV1(Transition):
    """A 12345 platform re-pushed an order with changed fields; the change is in the history."""

    TYPE = "ticket.updated"
    VERSION = 1
    changed_fields: list[str]


class TicketSignedV1(Transition):
    """签收: the unit accepted the ticket; the sign-for clock stops and handling starts."""

    TYPE = "ticket.signed"
    VERSION = 1


class TicketReturnRequestedV1(Transition):
    """退单申请: the unit says the ticket is not its duty (reason code + basis), inside the return window."""

    TYPE = "ticket.return_requested"
    VERSION = 1
    reason_code: str
    basis: str


class TicketReturnResolvedV1(Transition):
    """The return review's outcome as applied: approved (the ticket awaits 改派) or rejected (unit handles it)."""

    TYPE = "ticket.return_resolved"
    VERSION = 1
    approved: bool
    reviewer: str


class TicketExtensionRequestedV1(Transition):
    TYPE = "ticket.extension_requested"
    VERSION = 1
    working_days: int
    reason: str


class TicketExtensionReviewedV1(Transition):
    """延期审批: approved moves the handling deadline by ``working_days``."""

    TYPE = "ticket.extension_reviewed"
    VERSION = 1
    approved: bool
    working_days: int
    reviewer: str


class TicketRepliedV1(Transition):
    """回复: the unit's 办理结果, for platform review; the handling clock stops."""

    TYPE = "ticket.replied"
    VERSION = 1
    reply: str
    photo_count: int = 0


class TicketReplyReviewedV1(Transition):
    """Reply review: approved → 待回访; rejected → back to the unit (退回重办).

    When approved, the fields below are what notify needs to send the citizen the 办理结果 by SMS
    (``reporter.contact_token`` opens with the transit key only; none for anonymous reports) or, for
    an order a platform pushed (``origin``), to push the result back to it. All absent when rejected.
    """

    TYPE = "ticket.reply_reviewed"
    VERSION = 1
    approved: bool
    reviewer: str
    reply: str | None = None  # the approved 办理结果, as the citizen is told it
    channel: Channel | None = None
    reporter: ReporterRef | None = None
    origin: OrderOrigin | None = None


class TicketCallbackRecordedV1(Transition):
    """回访 result: satisfaction and whether the problem was actually solved (for 满意率 and 解决率)."""

    TYPE = "ticket.callback_recorded"
    VERSION = 1
    satisfaction: Satisfaction
    resolved: bool | None = None


class TicketReopenedV1(Transition):
    """重办: back to a unit after an unsatisfied callback; the handling clock restarts."""

    TYPE = "ticket.reopened"
    VERSION = 1
    redo_count: int
    reason: str


class TicketClosedV1(Transition):
    """办结: every clock of the ticket ends.

    ``reply`` (the last approved 办理结果, or the 直办 answer), ``channel``, ``reporter`` and ``origin``
    are what notify needs for the citizen's result SMS or the platform push-back; absent in older events.
    """

    TYPE = "ticket.closed"
    VERSION = 1
    satisfaction: Satisfaction | None = None
    resolved: bool | None = None
    reply: str | None = None
    channel: Channel | None = None
    reporter: ReporterRef | None = None
    origin: OrderOrigin | None = None


class TicketArchivedV1(Transition):
    TYPE = "ticket.archived"
    VERSION = 1


class TicketRejectedV1(Transition):
    """不予受理: out of scope (诉讼/仲裁/信访程序, other jurisdiction, …); the caller is told the legal route."""

    TYPE = "ticket.rejected"
    VERSION = 1
    reason_code: str
    reason: str


class TicketMergedV1(Transition):
    """并单: this ticket became a child of ``parent_ticket_id``; its reporter now follows the parent."""

    TYPE = "ticket.merged"
    VERSION = 1
    parent_ticket_id: uuid.UUID
    parent_ticket_no: str


class TicketUnmergedV1(Transition):
    TYPE = "ticket.unmerged"
    VERSION = 1
    former_parent_ticket_id: uuid.UUID


register(
    TicketReceivedV1,
    TicketDispatchedV1,
    TicketUpdatedV1,
    TicketSignedV1,
    TicketReturnRequestedV1,
    TicketReturnResolvedV1,
    TicketExtensionRequestedV1,
    TicketExtensionReviewedV1,
    TicketRepliedV1,
    TicketReplyReviewedV1,
    TicketCallbackRecordedV1,
    TicketReopenedV1,
    TicketClosedV1,
    TicketArchivedV1,
    TicketMergedV1,
    TicketUnmergedV1,
    TicketRejectedV1,
)
