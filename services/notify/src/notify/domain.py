"""Who must hear about an event, through which template: pure decisions, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import TicketReceivedV1
from gridline_contracts.notify import NotificationFailedV1, NotificationSentV1, RecipientKind

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Recipient:
    kind: RecipientKind
    ref: str  # unit code, or "token" when the address is the sealed contact token itself
    contact_token: str | None = None  # intake's sealed phone (reporters)


@dataclass(frozen=True)
class NotificationRequest:
    """One message to send. ``dedupe_key`` makes the same event never produce two messages."""

    dedupe_key: str
    ticket_id: uuid.UUID | None
    template: str
    recipient: Recipient
    params: dict[str, str]


def on_ticket_received(event_id: uuid.UUID, e: TicketReceivedV1) -> list[NotificationRequest]:
    """受理回执: tell the reporter the ticket number, unless anonymous or unreachable."""
    if e.reporter.anonymous or not e.reporter.contact_token:
        return []
    return [
        NotificationRequest(
            dedupe_key=f"{event_id}:reporter",
            ticket_id=e.ticket_id,
            template="ticket_received",
            recipient=Recipient("reporter", "token", e.reporter.contact_token),
            params={"order": e.ticket_no},
        )
    ]


def on_clock_started(event_id: uuid.UUID, e: SlaClockStartedV1) -> list[NotificationRequest]:
    """新工单提醒: tell the handling unit's liaison there is a ticket and when it is due."""
    due = e.due_at.astimezone(SHANGHAI).strftime("%m月%d日%H:%M")
    return [
        NotificationRequest(
            dedupe_key=f"{event_id}:unit:{e.unit_code}",
            ticket_id=e.ticket_id,
            template="ticket_assigned",
            recipient=Recipient("unit", e.unit_code),
            params={"order": e.ticket_no, "due": due},
        )
    ]


Outcome = Literal["sent", "rejected", "retryable", "ambiguous"]


def after_attempt(
    *,
    notification_id: uuid.UUID,
    ticket_id: uuid.UUID | None,
    template: str,
    recipient_kind: RecipientKind,
    masked: str,
    provider: str,
    outcome: Outcome,
    code: str,
    message: str,
    provider_message_id: str | None,
    attempts: int,
    max_attempts: int,
    now: datetime,
) -> tuple[str, list[NotificationSentV1 | NotificationFailedV1]]:
    """The notification's next status and the events to publish after one provider attempt.

    ``ambiguous`` (the request may have reached the provider) is never retried blindly: resending could
    deliver the SMS twice. It waits for reconciliation against the provider's receipts.
    """
    if outcome == "sent":
        return "sent", [
            NotificationSentV1(
                notification_id=notification_id,
                ticket_id=ticket_id,
                channel="sms",
                provider=provider,
                template=template,
                recipient_kind=recipient_kind,
                masked_recipient=masked,
                provider_message_id=provider_message_id,
                sent_at=now,
            )
        ]
    if outcome == "ambiguous":
        return "ambiguous", []
    if outcome == "retryable" and attempts < max_attempts:
        return "pending", []
    return "failed", [
        NotificationFailedV1(
            notification_id=notification_id,
            ticket_id=ticket_id,
            channel="sms",
            provider=provider,
            template=template,
            recipient_kind=recipient_kind,
            masked_recipient=masked,
            reason_code=code,
            reason=message[:500],
            failed_at=now,
        )
    ]
