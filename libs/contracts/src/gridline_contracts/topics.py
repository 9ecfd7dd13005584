"""The topic catalogue: the single source of truth for names, partitions, keys and owners.

Topic names are ``<owner>.<family>.v<major>``. Every consuming service has its own dead-letter topic
``<service>.dead-letter.v1``: a message can be poison for one consumer and fine for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import EventData
from .escalation import (
    EscalationRaisedV1,
    ReviewBreachedV1,
    ReviewClockStartedV1,
    ReviewClockStoppedV1,
    ReviewEscalatedV1,
    ReviewWarnedV1,
    SlaAcknowledgedV1,
    SlaBreachedV1,
    SlaClockExtendedV1,
    SlaClockPausedV1,
    SlaClockResumedV1,
    SlaClockStartedV1,
    SlaClockStoppedV1,
    SlaWarnedV1,
    SupervisionClosedV1,
    SupervisionOpenedV1,
    SupervisionOverdueV1,
)
from .intake import (
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
)
from .notify import NotificationFailedV1, NotificationSentV1
from .routing import (
    DirectoryVersionPublishedV1,
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    owner: str
    partitions: int
    key: str
    description: str
    events: tuple[type[EventData], ...] = ()
    retention_ms: int = WEEK_MS
    consumers: tuple[str, ...] = field(default=())


TICKETS = Topic(
    "intake.tickets.v1",
    "intake",
    6,
    "ticket id",
    "Work-order lifecycle (工单流转).",
    (
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
    ),
    consumers=("routing", "escalation", "notify"),
)
DISPATCH = Topic(
    "routing.dispatch.v1",
    "routing",
    6,
    "ticket id",
    "Dispatch decisions (派单).",
    (
        DispatchAssignedV1,
        DispatchNeedsManualV1,
        DispatchDuplicateFoundV1,
        DispatchUnmergedV1,
        DispatchReturnReviewedV1,
    ),
    consumers=("intake", "notify"),
)
DIRECTORY = Topic(
    "routing.directory.v1",
    "routing",
    1,
    "tenant code",
    "Directory versions (grids, units, 派单目录) as they are published.",
    (DirectoryVersionPublishedV1,),
    consumers=("notify", "escalation"),
    retention_ms=52 * WEEK_MS,
)
SLA = Topic(
    "escalation.sla.v1",
    "escalation",
    6,
    "ticket id",
    "SLA clocks, warnings and breaches; supervision records' deadlines; platform review clocks.",
    (
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
    ),
    consumers=("notify", "intake"),
)
NOTIFICATIONS = Topic(
    "notify.notifications.v1",
    "notify",
    6,
    "ticket id (notification id when no ticket)",
    "Delivery outcomes of SMS and WeChat messages.",
    (NotificationSentV1, NotificationFailedV1),
)

SERVICES = ("intake", "routing", "escalation", "notify")


def dead_letter(service: str) -> Topic:
    return Topic(
        f"{service}.dead-letter.v1",
        service,
        1,
        "the original key",
        f"Messages {service} could not read or kept failing on; original topic/partition/offset and the "
        "error are in dlq_* headers. Replayed with `python -m gridline_messaging.dlq replay`.",
        retention_ms=4 * WEEK_MS,
    )


EVENT_TOPICS: tuple[Topic, ...] = (TICKETS, DISPATCH, DIRECTORY, SLA, NOTIFICATIONS)
DEAD_LETTER_TOPICS: tuple[Topic, ...] = tuple(dead_letter(s) for s in SERVICES)
ALL_TOPICS: tuple[Topic, ...] = EVENT_TOPICS + DEAD_LETTER_TOPICS


def topic_for(event: type[EventData]) -> Topic:
    for t in EVENT_TOPICS:
        if event in t.events:
            return t
    raise KeyError(f"{event.TYPE} v{event.VERSION} is on no topic")
