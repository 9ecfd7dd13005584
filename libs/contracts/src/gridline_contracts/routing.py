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


class DispatchDuplicateFoundV1(EventData):
    """一事多报: ``ticket_id`` is a duplicate of the open ``parent_ticket_id`` (same tenant, category, place, time)."""

    TYPE = "dispatch.duplicate_found"
    VERSION = 1

    ticket_id: uuid.UUID
    parent_ticket_id: uuid.UUID
    distance_m: float | None = None
    rule: str
    decided_at: datetime


class DispatchUnmergedV1(EventData):
    """A dispatcher split a wrongly merged ticket off its parent; it is routed on its own."""

    TYPE = "dispatch.unmerged"
    VERSION = 1

    ticket_id: uuid.UUID
    former_parent_ticket_id: uuid.UUID
    dispatcher: str
    decided_at: datetime


class DispatchReturnReviewedV1(EventData):
    """退单审核: approved → a new ``dispatch.assigned`` (改派, excluding the returning unit) follows."""

    TYPE = "dispatch.return_reviewed"
    VERSION = 1

    ticket_id: uuid.UUID
    unit_code: str  # the unit that asked to return it
    approved: bool
    reviewer: str  # "auto:<rule>" or a dispatcher id
    reason: str
    decided_at: datetime


class DirectoryVersionPublishedV1(EventData):
    """A new directory version is live for a tenant (key: the tenant code)."""

    TYPE = "directory.version_published"
    VERSION = 1

    tenant: str
    version: int
    grids: int
    units: int
    rules: int
    imported_by: str
    published_at: datetime


register(
    DispatchAssignedV1,
    DispatchNeedsManualV1,
    DispatchDuplicateFoundV1,
    DispatchUnmergedV1,
    DispatchReturnReviewedV1,
    DirectoryVersionPublishedV1,
)
