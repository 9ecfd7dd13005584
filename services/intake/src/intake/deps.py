from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_pii import Keyring


@dataclass(frozen=True)
class Deps:
    """What request handlers need, built once in the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    pii: Keyring  # at rest, intake only
    transit: Keyring  # tokens in events, shared with notify
    metrics_received: Callable[[str], None]
