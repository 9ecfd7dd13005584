"""SLA clock events, owned by the escalation service (topic ``escalation.sla.v1``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from .envelope import EventData
from .registry import register


class SlaClockStartedV1(EventData):
    TYPE = "sla.clock_started"
    VERSION = 1

    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    time_limit: str  # human form of the policy, e.g. "3 working days"


register(SlaClockStartedV1)
