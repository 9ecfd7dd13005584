"""Delivery outcomes, owned by the notify service (topic ``notify.notifications.v1``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from .envelope import EventData
from .registry import register

NotifyChannel = Literal["sms", "wechat", "wecom", "hotline_callback"]
RecipientKind = Literal["reporter", "unit", "grid_staff", "supervisor", "platform"]


class NotificationSentV1(EventData):
    TYPE = "notification.sent"
    VERSION = 1

    notification_id: uuid.UUID
    ticket_id: uuid.UUID | None = None
    channel: NotifyChannel
    provider: str
    template: str
    recipient_kind: RecipientKind
    masked_recipient: str
    provider_message_id: str | None = None
    sent_at: datetime


class NotificationFailedV1(EventData):
    TYPE = "notification.failed"
    VERSION = 1

    notification_id: uuid.UUID
    ticket_id: uuid.UUID | None = None
    channel: NotifyChannel
    provider: str | None = None
    template: str
    recipient_kind: RecipientKind
    masked_recipient: str
    reason_code: str
    reason: str
    failed_at: datetime


register(NotificationSentV1, NotificationFailedV1)
