"""Work-order decisions for intake: pure functions that return the new state and the events it causes.

The lifecycle (domain §1.3): 已受理 received → 已派单 dispatched (or 待人工派单 awaiting_manual when
routing cannot decide) → … The full state machine grows here; every transition is a function
returning ``(Ticket, events)``, and illegal ones raise ``TransitionRefused`` with a stable code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gridline_contracts.intake import (
    Channel,
    DemandType,
    GeoPoint,
    Priority,
    ReporterRef,
    TicketDispatchedV1,
    TicketReceivedV1,
)
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1


class Status(StrEnum):
    RECEIVED = "received"  # 已受理
    AWAITING_MANUAL = "awaiting_manual"  # 待人工派单
    DISPATCHED = "dispatched"  # 已派单


class TransitionRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Location:
    lon: float  # WGS-84
    lat: float
    crs_original: str
    lon_original: float
    lat_original: float


@dataclass(frozen=True)
class Report:
    """A citizen report as validated by the API edge (phone already normalised and sealed)."""

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


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the 流转记录."""

    action: str
    from_status: Status | None
    to_status: Status
    actor: str
    note: str


def unit_view_of_reporter(reporter: ReporterRef, demand_type: DemandType | None) -> ReporterRef:
    """What travels to routing and units: nothing at all for confidential callers and every 举报."""
    if reporter.confidential or demand_type == "report":
        return ReporterRef(
            contact_token=reporter.contact_token, masked_phone=None, confidential=True, anonymous=reporter.anonymous
        )
    return reporter


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
        reporter=unit_view_of_reporter(ticket.reporter, ticket.demand_type),
    )
    history = HistoryEntry("receive", None, Status.RECEIVED, f"{report.channel}", "工单已受理")
    return ticket, history, [event]


def apply_dispatch(
    ticket: Ticket, decision: DispatchAssignedV1, now: datetime
) -> tuple[Ticket, HistoryEntry, list[TicketDispatchedV1]]:
    if ticket.status not in (Status.RECEIVED, Status.AWAITING_MANUAL):
        raise TransitionRefused("not_dispatchable", f"工单状态为{ticket.status}，不能派单")
    new = replace(
        ticket,
        status=Status.DISPATCHED,
        unit_code=decision.unit_code,
        co_unit_codes=tuple(decision.co_unit_codes),
        grid_code=decision.grid_code,
        sla_policy_key=decision.sla_policy_key,
        dispatched_at=now,
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
        reporter=unit_view_of_reporter(ticket.reporter, ticket.demand_type),
    )
    note = f"派至 {decision.unit_name}（{decision.unit_code}），依据规则 {decision.rule_id}"
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
