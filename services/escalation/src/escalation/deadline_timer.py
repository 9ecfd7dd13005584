"""The loop that fires supervision-record deadlines and review clocks (``Escalation.fire_deadlines``).

Separate from the SLA clock timer: it has its own tables, indexes and batches, and nothing of the
SLA timer's burst path waits for it. Every replica runs it; SKIP LOCKED shares the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .handlers import Escalation

log = logging.getLogger(__name__)

# Bounded label: the eight supervision.* and review.* event types.
EVENTS = Counter(
    "escalation_deadline_events_total", "Events the supervision and review timers published, by type.", ["type"]
)


class DeadlineTimer:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        escalation: Escalation,
        interval_s: float,
        batch_max: int,
    ) -> None:
        self.sessions = sessions
        self.escalation = escalation
        self.interval_s = interval_s
        self.batch_max = batch_max
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            n = 0
            try:
                async with self.sessions() as s, s.begin():
                    done = await self.escalation.fire_deadlines(s, datetime.now(UTC), self.batch_max)
                n = done.moved
                for event_type, count in done.events.items():
                    EVENTS.labels(event_type).inc(count)
            except Exception:
                log.exception("deadline timer iteration failed")
            if n < self.batch_max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
