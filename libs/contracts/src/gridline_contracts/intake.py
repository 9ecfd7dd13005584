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
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    contact_token: str | None = None
    masked_phone: str | None = None
    confidential: bool = False
    anonymous: bool = False


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


register(TicketReceivedV1, TicketDispatchedV1)
