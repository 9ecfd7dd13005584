"""Work-order decisions for intake: pure functions that return the new state and the events it causes.

The lifecycle is domain §1.3. Every command is guarded three ways, always in this order:

1. **role** (``role_not_allowed``, 403): who may ask at all — units sign/return/extend/reply,
   the 12345 platform reviews, calls back, redoes, closes and archives;
2. **ownership** (``not_your_ticket``, 403 → the API answers 404 so ticket ids cannot be probed):
   a unit acts only on tickets that are with it;
3. **state and time** (409): the ticket must be in one of the command's source states
   (``illegal_transition``), and the command's own window must be open (``return_window_closed``,
   ``deadline_passed``, ``evaluation_window_open``, …).

``TRANSITIONS`` is the single table of command → (source states, roles); tests walk it exhaustively.
A successful command returns a :class:`Decision`: the new ticket and the lifecycle events, each of
which is also one line of the 流转记录 (:func:`history_of`). ``now`` is always passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gridline_calendar import CalendarGapError
from gridline_contracts.envelope import EventData
from gridline_contracts.intake import (
    ActorRole,
    Channel,
    DemandType,
    GeoPoint,
    InspectionSite,
    OrderOrigin,
    Priority,
    ReporterRef,
    Satisfaction,
    TicketArchivedV1,
    TicketCallbackRecordedV1,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketExtensionRequestedV1,
    TicketExtensionReviewedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketRejectedV1,
    TicketReopenedV1,
    TicketRepliedV1,
    TicketReplyReviewedV1,
    TicketReturnRequestedV1,
    TicketReturnResolvedV1,
    TicketSignedV1,
    TicketUnmergedV1,
    TicketUpdatedV1,
    Transition,
)
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)

from .workdays import WorkingDays


class Status(StrEnum):
    RECEIVED = "received"  # 已受理, 待派单 (routing decides)
    REJECTED = "rejected"  # 不予受理
    DIRECT_CLOSED = "direct_closed"  # 直办 / 即时办结
    MERGED = "merged"  # 并单 (子单)
    AWAITING_MANUAL = "awaiting_manual"  # 待人工派单
    DISPATCHED = "dispatched"  # 已派单, 待签收
    RETURN_REQUESTED = "return_requested"  # 退单申请, 待审核
    ACCEPTED = "accepted"  # 已签收, 办理中
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请
    REPLIED = "replied"  # 已回复, 待审核
    PENDING_CALLBACK = "pending_callback"  # 待回访
    CLOSED = "closed"  # 办结
    ARCHIVED = "archived"  # 归档


OPEN_STATUSES = frozenset(Status) - {Status.REJECTED, Status.DIRECT_CLOSED, Status.CLOSED, Status.ARCHIVED}
UNIT_ROLES: frozenset[str] = frozenset({"unit", "grid_staff"})
PLATFORM_ROLES: frozenset[str] = frozenset({"platform"})

# 退单 reason codes (domain §1.3, 7→8): 属地不符, 职能不符, 权属不清, 已进入法定程序, 重复件.
RETURN_REASONS: Mapping[str, str] = {
    "wrong_territory": "属地不符",
    "not_our_duty": "职能不符",
    "unclear_ownership": "权属不清",
    "legal_procedure": "已进入法定程序",
    "duplicate": "重复件",
}
# 不予受理 reason codes (domain §1.3, state 2).
REJECT_REASONS: Mapping[str, str] = {
    "litigation_or_petition": "已进入诉讼、仲裁、信访等法定程序",
    "other_jurisdiction": "不属于本地管辖",
    "not_government_matter": "不属于政府职责范围（党委、人大、政协、法院、检察院、军队等）",
    "state_secret": "涉及国家秘密",
    "malicious": "恶意诉求或无实际内容",
}


class TransitionRefused(Exception):
    """A command the ticket's state, the actor's role or a time window does not allow."""

    status = 409

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = dict(details or {})


class CalendarGap(TransitionRefused):
    """A window needs a date nobody has working-day data for: an operator must enter that year's
    holiday notice (``CALENDAR_OVERRIDES``); answered 503, never guessed."""

    status = 503

    def __init__(self, exc: CalendarGapError) -> None:
        super().__init__(
            "calendar_gap",
            f"缺少 {exc.day.year} 年工作日历数据（{exc.day.isoformat()}），无法计算时限，"
            "请联系平台管理员录入节假日安排",
            {"day": exc.day.isoformat()},
        )


class ActorRefused(TransitionRefused):
    """The actor may not issue this command at all, or not on this ticket (403)."""

    status = 403


@dataclass(frozen=True)
class Actor:
    """Who issues a command: from a verified staff token or integration key, never from the body."""

    role: ActorRole
    id: str  # staff id, integration id or "routing"; never a citizen's personal data
    unit_code: str | None = None


ROUTING = Actor(role="system", id="routing")


@dataclass(frozen=True)
class Rules:
    """Time windows and limits (domain §1.5). Defaults follow the Shandong rules (S8, S9).

    The request windows are in working days on the tenant's calendar (:mod:`intake.workdays`):
    退单 within ``return_window_working_days`` of dispatch; 延期 no later than
    ``extension_lead_working_days`` before the deadline's day (0: up to the deadline itself).
    The evaluation and reopen windows after 办结 are calendar days (they are not handling limits).
    """

    return_window_working_days: int = 2
    extension_lead_working_days: int = 1
    calendars: Mapping[str, WorkingDays] = field(default_factory=lambda: MappingProxyType({}))
    max_extension_days: int = 10
    max_extensions: int = 2
    max_redo: int = 2
    evaluation_window: timedelta = timedelta(days=7)  # closed → archivable after this
    reopen_window: timedelta = timedelta(days=30)  # closed → may be reopened within this

    def calendar(self, tenant: str) -> WorkingDays:
        return self.calendars.get(tenant) or WorkingDays()


@dataclass(frozen=True)
class Location:
    lon: float  # WGS-84
    lat: float
    crs_original: str
    lon_original: float
    lat_original: float


@dataclass(frozen=True)
class Report:
    """A report as validated by the API edge (phone already normalised and sealed)."""

    tenant: str
    channel: Channel
    category_code: str
    description: str
    demand_type: DemandType | None
    priority: Priority
    location: Location | None
    address: str | None
    area_code: str | None
    reported_at: datetime
    reporter: ReporterRef
    platform_due_at: datetime | None = None
    origin: OrderOrigin | None = None
    site: InspectionSite | None = None


@dataclass(frozen=True)
class Ticket:
    id: uuid.UUID
    tenant: str
    ticket_no: str
    status: Status
    channel: Channel
    category_code: str
    description: str
    demand_type: DemandType | None
    priority: Priority
    location: Location | None
    address: str | None
    area_code: str | None
    reported_at: datetime
    received_at: datetime
    reporter: ReporterRef
    unit_code: str | None = None
    co_unit_codes: tuple[str, ...] = ()
    grid_code: str | None = None
    sla_policy_key: str | None = None
    dispatched_at: datetime | None = None
    version: int = 1
    platform_due_at: datetime | None = None
    # Lifecycle bookkeeping (domain §1.3/§1.4).
    accepted_at: datetime | None = None
    due_at: datetime | None = None  # the handling deadline, as escalation's clock reports it
    sla_colour: str = "green"  # green | yellow | red (escalation's 黄牌/红牌)
    return_refused: bool = False  # a 退单 of the current dispatch was 驳回: the unit must handle it
    pending_extension_days: int | None = None
    extension_count: int = 0
    redo_count: int = 0
    last_satisfaction: Satisfaction | None = None
    last_resolved: bool | None = None
    closed_at: datetime | None = None
    merge_parent_id: uuid.UUID | None = None
    source: str | None = None  # the integration that pushed it, if any
    external_id: str | None = None  # that integration's own order id
    last_reply: str | None = None  # the unit's latest 办理结果 (approved or under review)


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the 流转记录."""

    action: str
    from_status: Status | None
    to_status: Status
    actor: str
    note: str
    actor_role: str = "system"


@dataclass(frozen=True)
class Decision:
    ticket: Ticket
    events: tuple[EventData, ...] = ()
    history: tuple[HistoryEntry, ...] = field(default=())


# command → (source states, roles allowed). The one table every guard and test reads.
TRANSITIONS: Mapping[str, tuple[frozenset[Status], frozenset[str]]] = {
    "sign": (frozenset({Status.DISPATCHED}), UNIT_ROLES),
    "request_return": (frozenset({Status.DISPATCHED, Status.ACCEPTED}), UNIT_ROLES),
    "request_extension": (frozenset({Status.ACCEPTED}), UNIT_ROLES),
    "reply": (frozenset({Status.ACCEPTED}), UNIT_ROLES),
    "review_extension": (frozenset({Status.EXTENSION_REQUESTED}), PLATFORM_ROLES),
    "review_reply": (frozenset({Status.REPLIED}), PLATFORM_ROLES),
    "record_callback": (frozenset({Status.PENDING_CALLBACK}), frozenset({"platform", "hotline"})),
    "redo": (frozenset({Status.PENDING_CALLBACK}), PLATFORM_ROLES),
    "close": (frozenset({Status.PENDING_CALLBACK}), PLATFORM_ROLES),
    "archive": (frozenset({Status.CLOSED, Status.DIRECT_CLOSED, Status.REJECTED}), frozenset({"platform", "system"})),
    "reopen": (frozenset({Status.CLOSED}), frozenset({"platform", "supervisor"})),
    "reject": (frozenset({Status.RECEIVED, Status.AWAITING_MANUAL}), frozenset({"platform", "hotline", "dispatcher"})),
    "direct_close": (frozenset({Status.RECEIVED, Status.AWAITING_MANUAL}), frozenset({"platform", "hotline"})),
    # Driven by routing's events (actor = system/routing).
    # From DISPATCHED it is routing's 改派 before 签收; from RETURN_REQUESTED, 改派 after a return.
    "dispatch": (
        frozenset({Status.RECEIVED, Status.AWAITING_MANUAL, Status.DISPATCHED, Status.RETURN_REQUESTED}),
        frozenset({"system"}),
    ),
    "needs_manual": (frozenset({Status.RECEIVED}), frozenset({"system"})),
    "merge": (frozenset({Status.RECEIVED, Status.AWAITING_MANUAL}), frozenset({"system"})),
    "unmerge": (frozenset({Status.MERGED}), frozenset({"system"})),
    "review_return": (frozenset({Status.RETURN_REQUESTED}), frozenset({"system"})),
}

# Commands that only the unit the ticket is with may issue.
UNIT_OWNED = frozenset({"sign", "request_return", "request_extension", "reply"})

STATUS_ZH: Mapping[Status, str] = {
    Status.RECEIVED: "已受理",
    Status.REJECTED: "不予受理",
    Status.DIRECT_CLOSED: "直办",
    Status.MERGED: "已并单",
    Status.AWAITING_MANUAL: "待人工派单",
    Status.DISPATCHED: "已派单待签收",
    Status.RETURN_REQUESTED: "退单审核中",
    Status.ACCEPTED: "办理中",
    Status.EXTENSION_REQUESTED: "延期审核中",
    Status.REPLIED: "回复审核中",
    Status.PENDING_CALLBACK: "待回访",
    Status.CLOSED: "已办结",
    Status.ARCHIVED: "已归档",
}


def guard(command: str, ticket: Ticket, actor: Actor) -> None:
    """Role, then ownership, then state; raises the first refusal that applies."""
    sources, roles = TRANSITIONS[command]
    if actor.role not in roles:
        raise ActorRefused("role_not_allowed", f"角色 {actor.role} 不能执行该操作", {"command": command})
    if command in UNIT_OWNED and (actor.unit_code is None or actor.unit_code != ticket.unit_code):
        raise ActorRefused("not_your_ticket", "该工单不在本单位办理", {"command": command})
    if ticket.status not in sources:
        raise TransitionRefused(
            "illegal_transition",
            f"工单当前状态为「{STATUS_ZH[ticket.status]}」，不能执行该操作",
            {"command": command, "status": ticket.status.value, "allowed_from": sorted(s.value for s in sources)},
        )


def _transition(
    ticket: Ticket,
    to: Status,
    event_cls: type[Transition],
    actor: Actor,
    now: datetime,
    *,
    note: str = "",
    changes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[Ticket, Transition]:
    new = replace(ticket, status=to, version=ticket.version + 1, **dict(changes or {}))
    event = event_cls(
        ticket_id=ticket.id,
        ticket_no=ticket.ticket_no,
        from_status=ticket.status.value,
        to_status=to.value,
        actor_role=actor.role,
        actor=actor.id,
        at=now,
        unit_code=new.unit_code,
        note=note,
        **fields,
    )
    return new, event


def history_of(event: EventData) -> HistoryEntry:
    """The 流转记录 line of a lifecycle event."""
    assert isinstance(event, Transition)
    return HistoryEntry(
        action=type(event).TYPE.removeprefix("ticket."),
        from_status=Status(event.from_status),
        to_status=Status(event.to_status),
        actor=event.actor,
        note=event.note,
        actor_role=event.actor_role,
    )


def _decide(ticket: Ticket, *steps: tuple[Ticket, Transition]) -> Decision:
    final = steps[-1][0] if steps else ticket
    events = tuple(e for _, e in steps)
    return Decision(final, events, tuple(history_of(e) for e in events))


def _citizen_facts(ticket: Ticket) -> dict[str, Any]:
    """What notify needs to tell the citizen a result (SMS) or push it back to the source platform."""
    origin = (
        OrderOrigin(integration=ticket.source, external_id=ticket.external_id)
        if ticket.source and ticket.external_id
        else None
    )
    return {
        "channel": ticket.channel,
        "reporter": unit_view_of_reporter(ticket.reporter, ticket.demand_type),
        "origin": origin,
    }


def unit_view_of_reporter(reporter: ReporterRef, demand_type: DemandType | None) -> ReporterRef:
    """What travels to routing and units: nothing at all for confidential callers and every 举报."""
    if reporter.confidential or demand_type == "report":
        return ReporterRef(
            contact_token=reporter.contact_token,
            masked_phone=None,
            confidential=True,
            anonymous=reporter.anonymous,
            caller_hash=reporter.caller_hash,  # an opaque per-tenant HMAC: lets routing see "same caller" only
        )
    return reporter


# ---------------------------------------------------------------------------------------------
# Intake


def receive(
    report: Report, *, ticket_id: uuid.UUID, ticket_no: str, now: datetime
) -> tuple[Ticket, HistoryEntry, list[TicketReceivedV1]]:
    ticket = Ticket(
        id=ticket_id,
        tenant=report.tenant,
        ticket_no=ticket_no,
        status=Status.RECEIVED,
        channel=report.channel,
        category_code=report.category_code,
        description=report.description,
        demand_type=report.demand_type,
        priority=report.priority,
        location=report.location,
        address=report.address,
        area_code=report.area_code,
        reported_at=report.reported_at,
        received_at=now,
        reporter=report.reporter,
        platform_due_at=report.platform_due_at,
        source=report.origin.integration if report.origin else None,
        external_id=report.origin.external_id if report.origin else None,
    )
    event = TicketReceivedV1(
        ticket_id=ticket.id,
        ticket_no=ticket_no,
        channel=ticket.channel,
        category_code=ticket.category_code,
        demand_type=ticket.demand_type,
        priority=ticket.priority,
        description=ticket.description,
        location=GeoPoint(lon=report.location.lon, lat=report.location.lat) if report.location else None,
        address=ticket.address,
        area_code=ticket.area_code,
        reported_at=ticket.reported_at,
        received_at=now,
        platform_due_at=report.platform_due_at,
        reporter=unit_view_of_reporter(ticket.reporter, ticket.demand_type),
        origin=report.origin,
        site=report.site,
    )
    history = HistoryEntry("receive", None, Status.RECEIVED, f"{report.channel}", "工单已受理", report.channel)
    return ticket, history, [event]


UPDATABLE_FIELDS = (
    "category_code",
    "description",
    "demand_type",
    "priority",
    "address",
    "area_code",
    "platform_due_at",
)


def update_from_source(ticket: Ticket, changes: Mapping[str, Any], actor: Actor, now: datetime) -> Decision:
    """A 12345 platform re-pushed its order with changes: apply them while the ticket is still open.

    Status does not move; the event (from = to) records which fields changed, for the history.
    """
    changed = sorted(k for k in UPDATABLE_FIELDS if k in changes and changes[k] != getattr(ticket, k))
    if not changed:
        return Decision(ticket)
    if ticket.status not in OPEN_STATUSES:
        raise TransitionRefused("ticket_finished", "工单已办结或不予受理，不能再更新", {"status": ticket.status.value})
    new, event = _transition(
        ticket,
        ticket.status,
        TicketUpdatedV1,
        actor,
        now,
        note="来源平台更新了：" + "、".join(changed),
        changes={k: changes[k] for k in changed},
        changed_fields=changed,
    )
    return _decide(ticket, (new, event))


def reject(ticket: Ticket, actor: Actor, reason_code: str, reason: str, now: datetime) -> Decision:
    """不予受理 (state 2): out of scope; the caller is told the legal route in ``reason``."""
    guard("reject", ticket, actor)
    if reason_code not in REJECT_REASONS:
        raise TransitionRefused("unknown_reason_code", "不予受理原因代码无效", {"allowed": sorted(REJECT_REASONS)})
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.REJECTED,
            TicketRejectedV1,
            actor,
            now,
            note=f"不予受理：{REJECT_REASONS[reason_code]}。{reason}",
            changes={"closed_at": now},
            reason_code=reason_code,
            reason=reason,
        ),
    )


def direct_close(ticket: Ticket, actor: Actor, answer: str, now: datetime) -> Decision:
    """直办 (state 4): answered on the spot from the knowledge base; no unit is involved."""
    guard("direct_close", ticket, actor)
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.DIRECT_CLOSED,
            TicketClosedV1,
            actor,
            now,
            note=f"直办：{answer}",
            changes={"closed_at": now, "last_reply": answer},
            reply=answer,
            **_citizen_facts(ticket),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Routing's decisions (Kafka)


def apply_dispatch(
    ticket: Ticket, decision: DispatchAssignedV1, now: datetime
) -> tuple[Ticket, HistoryEntry, list[TicketDispatchedV1]]:
    """派单 or 改派. From ``dispatched`` it is routing's 改派 before the unit signed (a dispatcher moved
    it); from ``return_requested``, 改派 after routing approved the return. Once signed, only a
    return can move a ticket to another unit.
    """
    if ticket.status not in TRANSITIONS["dispatch"][0]:
        raise TransitionRefused("not_dispatchable", f"工单状态为{ticket.status}，不能派单")
    if ticket.status is Status.DISPATCHED and decision.unit_code == ticket.unit_code:
        # Routing never reassigns to the same unit; this is a repeated decision (new event id), not news.
        raise TransitionRefused("already_dispatched", f"工单已派至 {ticket.unit_code}，无需重复派单")
    new = replace(
        ticket,
        status=Status.DISPATCHED,
        unit_code=decision.unit_code,
        co_unit_codes=tuple(decision.co_unit_codes),
        grid_code=decision.grid_code,
        sla_policy_key=decision.sla_policy_key,
        dispatched_at=now,
        accepted_at=None,
        due_at=None,
        sla_colour="green",
        return_refused=False,
        version=ticket.version + 1,
    )
    event = TicketDispatchedV1(
        ticket_id=ticket.id,
        ticket_no=ticket.ticket_no,
        category_code=ticket.category_code,
        priority=ticket.priority,
        unit_code=decision.unit_code,
        co_unit_codes=list(decision.co_unit_codes),
        grid_code=decision.grid_code,
        sla_policy_key=decision.sla_policy_key,
        dispatched_at=now,
        platform_due_at=ticket.platform_due_at,
        reporter=unit_view_of_reporter(ticket.reporter, ticket.demand_type),
        previous_unit_code=ticket.unit_code,
    )
    verb = "改派至" if ticket.unit_code else "派至"
    note = f"{verb} {decision.unit_name}（{decision.unit_code}），依据规则 {decision.rule_id}"
    if ticket.status is Status.DISPATCHED:
        note += f"；原承办单位 {ticket.unit_code} 未签收"
    return new, HistoryEntry("dispatch", ticket.status, Status.DISPATCHED, "routing", note), [event]


def apply_needs_manual(ticket: Ticket, decision: DispatchNeedsManualV1) -> tuple[Ticket, HistoryEntry]:
    if ticket.status != Status.RECEIVED:
        raise TransitionRefused("not_awaiting_dispatch", f"工单状态为{ticket.status}，不能转人工派单")
    new = replace(ticket, status=Status.AWAITING_MANUAL, version=ticket.version + 1)
    return new, HistoryEntry(
        "await_manual",
        ticket.status,
        Status.AWAITING_MANUAL,
        "routing",
        f"转人工派单：{decision.reason}（{decision.reason_code}）",
    )


def apply_duplicate(ticket: Ticket, found: DispatchDuplicateFoundV1, parent_no: str, now: datetime) -> Decision:
    """并单: the ticket becomes a child of an open parent and is not dispatched on its own."""
    guard("merge", ticket, ROUTING)
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.MERGED,
            TicketMergedV1,
            ROUTING,
            now,
            note=f"与工单 {parent_no} 并单（{found.rule}）",
            changes={"merge_parent_id": found.parent_ticket_id},
            parent_ticket_id=found.parent_ticket_id,
            parent_ticket_no=parent_no,
        ),
    )


def apply_unmerge(ticket: Ticket, split: DispatchUnmergedV1, now: datetime) -> Decision:
    """A dispatcher split a wrong merge: back to received, and routing routes it on its own."""
    guard("unmerge", ticket, ROUTING)
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.RECEIVED,
            TicketUnmergedV1,
            Actor("dispatcher", split.dispatcher),
            now,
            note="撤销并单，单独派单",
            changes={"merge_parent_id": None},
            former_parent_ticket_id=split.former_parent_ticket_id,
        ),
    )


def apply_return_review(ticket: Ticket, review: DispatchReturnReviewedV1, now: datetime) -> Decision:
    """退单审核 as routing decided it. Approved: the ticket waits for 改派 (a ``dispatch.assigned``
    follows). Rejected (驳回退单): the unit must handle it — it counts as signed, and may not return
    it again for this dispatch.
    """
    guard("review_return", ticket, ROUTING)
    if review.unit_code != ticket.unit_code:
        raise TransitionRefused("stale_return_review", "退单审核结果与当前承办单位不符")
    reviewer = Actor("dispatcher", review.reviewer)
    if review.approved:
        step = _transition(
            ticket,
            Status.RECEIVED,
            TicketReturnResolvedV1,
            reviewer,
            now,
            note=f"退单审核通过：{review.reason}，等待改派",
            changes={"unit_code": None, "co_unit_codes": (), "accepted_at": None, "due_at": None},
            approved=True,
            reviewer=review.reviewer,
        )
    else:
        step = _transition(
            ticket,
            Status.ACCEPTED,
            TicketReturnResolvedV1,
            reviewer,
            now,
            note=f"退单被驳回：{review.reason}，请承办单位办理",
            changes={"return_refused": True, "accepted_at": ticket.accepted_at or now},
            approved=False,
            reviewer=review.reviewer,
        )
    return _decide(ticket, step)


# ---------------------------------------------------------------------------------------------
# Unit actions


def sign(ticket: Ticket, actor: Actor, now: datetime) -> Decision:
    """签收: the unit takes the ticket; handling starts. Late signing is allowed (escalation flags it)."""
    guard("sign", ticket, actor)
    return _decide(
        ticket,
        _transition(
            ticket, Status.ACCEPTED, TicketSignedV1, actor, now, note="承办单位已签收", changes={"accepted_at": now}
        ),
    )


def request_return(ticket: Ticket, actor: Actor, reason_code: str, basis: str, now: datetime, rules: Rules) -> Decision:
    """退单申请: a reason code and its basis, inside the return window counted from dispatch."""
    guard("request_return", ticket, actor)
    if reason_code not in RETURN_REASONS:
        raise TransitionRefused("unknown_reason_code", "退单原因代码无效", {"allowed": sorted(RETURN_REASONS)})
    if len(basis.strip()) < 4:
        raise TransitionRefused("return_basis_required", "退单须说明依据（法规、三定职责或权责清单条目）")
    if ticket.return_refused:
        raise TransitionRefused("return_already_refused", "本单位的退单申请已被驳回，须办理该工单")
    assert ticket.dispatched_at is not None
    cal = rules.calendar(ticket.tenant)
    try:
        closed_on = cal.window_closed(ticket.dispatched_at, rules.return_window_working_days, now)
    except CalendarGapError as exc:
        raise CalendarGap(exc) from exc
    if closed_on is not None:
        raise TransitionRefused(
            "return_window_closed",
            f"已超过退单时限（派单后 {rules.return_window_working_days} 个工作日），不能退单",
            {"window_closed_at": cal.end_of(closed_on).isoformat()},
        )
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.RETURN_REQUESTED,
            TicketReturnRequestedV1,
            actor,
            now,
            note=f"申请退单：{RETURN_REASONS[reason_code]}。依据：{basis}",
            reason_code=reason_code,
            basis=basis,
        ),
    )


def request_extension(
    ticket: Ticket, actor: Actor, working_days: int, reason: str, now: datetime, rules: Rules
) -> Decision:
    """延期申请: before the deadline, within the tenant's limits on length and count."""
    guard("request_extension", ticket, actor)
    if not 1 <= working_days <= rules.max_extension_days:
        raise TransitionRefused(
            "extension_too_long",
            f"延期天数须在 1 至 {rules.max_extension_days} 个工作日之间",
            {"max": rules.max_extension_days},
        )
    if ticket.extension_count >= rules.max_extensions:
        raise TransitionRefused("extension_limit_reached", f"该工单已延期 {ticket.extension_count} 次，不能再申请")
    if len(reason.strip()) < 4:
        raise TransitionRefused("extension_reason_required", "延期须说明理由")
    deadline = ticket.due_at or ticket.platform_due_at
    if deadline is not None and now >= deadline:
        raise TransitionRefused("deadline_passed", "已超过办理时限，不能申请延期", {"due_at": deadline.isoformat()})
    if deadline is not None and rules.extension_lead_working_days > 0:
        cal = rules.calendar(ticket.tenant)
        try:
            last_day = cal.nth_workday_before(cal.local_date(deadline), rules.extension_lead_working_days)
        except CalendarGapError as exc:
            raise CalendarGap(exc) from exc
        if now >= cal.end_of(last_day):
            raise TransitionRefused(
                "extension_window_closed",
                f"延期须在办理时限届满前 {rules.extension_lead_working_days} 个工作日提出",
                {"due_at": deadline.isoformat(), "window_closed_at": cal.end_of(last_day).isoformat()},
            )
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.EXTENSION_REQUESTED,
            TicketExtensionRequestedV1,
            actor,
            now,
            note=f"申请延期 {working_days} 个工作日：{reason}",
            changes={"pending_extension_days": working_days},
            working_days=working_days,
            reason=reason,
        ),
    )


def reply(ticket: Ticket, actor: Actor, text: str, photo_count: int, now: datetime) -> Decision:
    """回复: the unit's 办理结果 for platform review."""
    guard("reply", ticket, actor)
    if len(text.strip()) < 4:
        raise TransitionRefused("reply_too_short", "办理结果过于简单，请说明如何处理")
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.REPLIED,
            TicketRepliedV1,
            actor,
            now,
            note=f"办理结果：{text}",
            changes={"last_reply": text},
            reply=text,
            photo_count=photo_count,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Platform decisions


def review_extension(ticket: Ticket, actor: Actor, approved: bool, working_days: int | None, now: datetime) -> Decision:
    """延期审批: approved moves the deadline (escalation does that on this event); either way back to 办理中."""
    guard("review_extension", ticket, actor)
    requested = ticket.pending_extension_days or 0
    granted = requested if working_days is None else working_days
    if approved and not 1 <= granted <= requested:
        raise TransitionRefused(
            "extension_days_invalid", f"批准天数须在 1 至 {requested} 之间", {"requested": requested}
        )
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.ACCEPTED,
            TicketExtensionReviewedV1,
            actor,
            now,
            note=f"同意延期 {granted} 个工作日" if approved else "不同意延期，请按期办结",
            changes={
                "pending_extension_days": None,
                "extension_count": ticket.extension_count + (1 if approved else 0),
            },
            approved=approved,
            working_days=granted if approved else 0,
            reviewer=actor.id,
        ),
    )


def review_reply(ticket: Ticket, actor: Actor, approved: bool, comment: str, now: datetime) -> Decision:
    """回复审核: approved → 待回访; rejected (回复退回) → back to the unit, 办理中."""
    guard("review_reply", ticket, actor)
    if not approved and len(comment.strip()) < 2:
        raise TransitionRefused("review_comment_required", "退回回复须说明原因")
    to = Status.PENDING_CALLBACK if approved else Status.ACCEPTED
    return _decide(
        ticket,
        _transition(
            ticket,
            to,
            TicketReplyReviewedV1,
            actor,
            now,
            note=("回复审核通过" if approved else "回复被退回，请重新办理") + (f"：{comment}" if comment else ""),
            changes={"last_satisfaction": None, "last_resolved": None},
            approved=approved,
            reviewer=actor.id,
            **({"reply": ticket.last_reply, **_citizen_facts(ticket)} if approved else {}),
        ),
    )


def record_callback(
    ticket: Ticket, actor: Actor, satisfaction: Satisfaction, resolved: bool | None, now: datetime
) -> Decision:
    """回访: 满意/基本满意 closes the ticket; 不满意 waits for 重办 (or a close decision); 联系不上 is
    recorded and the platform decides when to close."""
    guard("record_callback", ticket, actor)
    labels = {
        "satisfied": "满意",
        "basically_satisfied": "基本满意",
        "unsatisfied": "不满意",
        "unreachable": "联系不上",
    }
    solved = {True: "，已解决", False: "，未解决", None: ""}[resolved]
    step = _transition(
        ticket,
        Status.PENDING_CALLBACK,
        TicketCallbackRecordedV1,
        actor,
        now,
        note=f"回访结果：{labels[satisfaction]}{solved}",
        changes={"last_satisfaction": satisfaction, "last_resolved": resolved},
        satisfaction=satisfaction,
        resolved=resolved,
    )
    if satisfaction not in ("satisfied", "basically_satisfied"):
        return _decide(ticket, step)
    closed = _transition(
        step[0],
        Status.CLOSED,
        TicketClosedV1,
        actor,
        now,
        note="回访满意，工单办结",
        changes={"closed_at": now},
        satisfaction=satisfaction,
        resolved=resolved,
        reply=ticket.last_reply,
        **_citizen_facts(ticket),
    )
    return _decide(ticket, step, closed)


def redo(ticket: Ticket, actor: Actor, reason: str, now: datetime, rules: Rules) -> Decision:
    """重办: after an unsatisfied callback, back to the same unit; limited by ``rules.max_redo``."""
    guard("redo", ticket, actor)
    if ticket.last_satisfaction != "unsatisfied":
        raise TransitionRefused("callback_not_unsatisfied", "只有回访不满意的工单才能重办")
    if ticket.redo_count >= rules.max_redo:
        raise TransitionRefused(
            "redo_limit_reached", f"已重办 {ticket.redo_count} 次，请督办或作办结决定", {"max": rules.max_redo}
        )
    n = ticket.redo_count + 1
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.ACCEPTED,
            TicketReopenedV1,
            actor,
            now,
            note=f"第 {n} 次重办：{reason}",
            changes={"redo_count": n, "accepted_at": now, "last_satisfaction": None, "last_resolved": None},
            redo_count=n,
            reason=reason,
        ),
    )


def close(ticket: Ticket, actor: Actor, reason: str, now: datetime) -> Decision:
    """办结 by platform decision after a callback that did not close it (联系不上, or 重办 exhausted)."""
    guard("close", ticket, actor)
    if ticket.last_satisfaction is None:
        raise TransitionRefused("callback_missing", "须先记录回访结果才能办结")
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.CLOSED,
            TicketClosedV1,
            actor,
            now,
            note=f"平台决定办结：{reason}",
            changes={"closed_at": now},
            satisfaction=ticket.last_satisfaction,
            resolved=ticket.last_resolved,
            reply=ticket.last_reply,
            **_citizen_facts(ticket),
        ),
    )


def archive(ticket: Ticket, actor: Actor, now: datetime, rules: Rules) -> Decision:
    """归档: once the evaluation window after 办结 is over; an archived ticket never changes again."""
    guard("archive", ticket, actor)
    assert ticket.closed_at is not None
    opens = ticket.closed_at + rules.evaluation_window
    if now < opens:
        raise TransitionRefused(
            "evaluation_window_open", "评价期未结束，暂不能归档", {"archivable_at": opens.isoformat()}
        )
    return _decide(ticket, _transition(ticket, Status.ARCHIVED, TicketArchivedV1, actor, now, note="工单已归档"))


def reopen(ticket: Ticket, actor: Actor, reason: str, now: datetime, rules: Rules) -> Decision:
    """重新交办 a closed ticket (e.g. the problem came back, or 督查 found it unsolved), within the window."""
    guard("reopen", ticket, actor)
    assert ticket.closed_at is not None
    if ticket.unit_code is None:
        raise TransitionRefused("no_unit_to_reopen", "该工单没有承办单位，不能重新交办")
    if now > ticket.closed_at + rules.reopen_window:
        raise TransitionRefused("reopen_window_closed", "已超过可重新交办的期限")
    n = ticket.redo_count + 1
    return _decide(
        ticket,
        _transition(
            ticket,
            Status.ACCEPTED,
            TicketReopenedV1,
            actor,
            now,
            note=f"重新交办：{reason}",
            changes={"redo_count": n, "accepted_at": now, "closed_at": None, "last_satisfaction": None},
            redo_count=n,
            reason=reason,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Escalation's clock (Kafka): facts only, no transition


def apply_clock(ticket: Ticket, *, due_at: datetime | None = None, colour: str | None = None) -> Ticket:
    """Keep the deadline and SLA colour the worklist filters on; never moves the status."""
    changes: dict[str, Any] = {}
    if due_at is not None:
        changes["due_at"] = due_at
    if colour is not None:
        changes["sla_colour"] = colour
    return replace(ticket, version=ticket.version + 1, **changes) if changes else ticket
