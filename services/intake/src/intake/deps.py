from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_pii import Keyring

from .auth import Integration, StaffTokens
from .domain import Rules
from .storage import LocalStorage, Storage
from .ticket_numbers import TicketNumbers


@dataclass(frozen=True)
class Deps:
    """What request handlers need, built once in the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    pii: Keyring  # at rest, intake only
    transit: Keyring  # tokens in events, shared with notify
    metrics_received: Callable[[str], None]
    staff_tokens: StaffTokens | None = None
    integrations: Mapping[str, Integration] | None = None
    rules: Rules = field(default_factory=Rules)
    max_skew: timedelta = timedelta(minutes=5)
    reports_per_phone_per_hour: int = 20
    reports_per_openid_per_hour: int = 20
    reports_per_ip_per_hour: int = 60  # unsigned submissions only
    client_ip_header: str | None = None  # set by our ingress (X-Real-IP); unset: the socket peer
    storage: Storage = field(default_factory=lambda: LocalStorage(Path("var/intake-attachments")))
    max_photo_bytes: int = 5_000_000
    max_photos: int = 9
    max_upload_bytes: int = 45_100_000
    ticket_numbers: TicketNumbers | None = None  # 工单编号 in blocks, outside the report's transaction
