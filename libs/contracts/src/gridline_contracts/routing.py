"""Dispatch decisions, owned by the routing service (topic ``routing.dispatch.v1``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from .envelope import EventData
from .registry import register

MatchMethod = Literal["point", "address", "area", "manual"]


class DispatchAssignedV1(EventData):
    TYPE = "dispatch.assigned"
    VERSION = 1

    ticket_id: uuid.UUID
    unit_code: str
    unit_name: str
    co_unit_codes: list[str] = []
    grid_code: str | None = None
    rule_id: str
    directory_version: int
    sla_policy_key: str
    match_method: MatchMethod
    confidence: float
    decided_at: datetime


class DispatchNeedsManualV1(EventData):
    """No rule or no confident place match: a dispatcher decides. Never a guess."""

    TYPE = "dispatch.needs_manual"
    VERSION = 1

    ticket_id: uuid.UUID
    reason_code: str
    reason: str
    suggested_unit_codes: list[str] = []
    decided_at: datetime


register(DispatchAssignedV1, DispatchNeedsManualV1)
