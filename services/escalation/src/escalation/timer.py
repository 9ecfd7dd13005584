"""The durable timer: every clock's next due time is a row; replicas share the work with SKIP LOCKED."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics, store
from .calendar import CalendarGapError
from .handlers import Escalation

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], escalation: Escalation, interval_s: float, batch_max: int
    ) -> None:
        self.sessions = sessions
        self.escalation = escalation
        self.interval_s = interval_s
        self.batch_max = batch_max
        self._stopping = asyncio.Event()
        self._gauges_at = 0.0

    async def stop(self) -> None:
        self._stopping.set()

    def observe(self, dues: list[datetime], committed_at: datetime) -> None:
        """Lag from each clock's due time to the commit that fired it."""
        for due in dues:
            metrics.TIMER_LAG.observe(max((committed_at - due).total_seconds(), 0.0))

    async def gauges(self) -> None:
        """Refresh the bounded gauges (per tenant) now and then, not per tick."""
        now = time.monotonic()
        if now - self._gauges_at < 30:
            return
        self._gauges_at = now
        async with self.sessions() as s:
            for tenant, n in (await store.overdue_by_tenant(s, datetime.now(UTC))).items():
                metrics.OVERDUE_OPEN.labels(tenant).set(n)

    async def run(self) -> None:
        while not self._stopping.is_set():
            n = 0
            try:
                async with self.sessions() as s, s.begin():
                    dues = await self.escalation.tick_due(s, datetime.now(UTC), self.batch_max)
                n = len(dues)
                metrics.TICKS.inc(n)
                self.observe(dues, datetime.now(UTC))
                await self.gauges()
            except CalendarGapError as exc:
                # The working calendar lacks a year (e.g. 2027 before the State Council notice is
                # entered): alert and keep trying; never guess a deadline.
                metrics.CALENDAR_GAPS.inc()
                log.error("calendar has no data for %s; enter overrides for that year", exc.day)
            except Exception:
                log.exception("timer iteration failed")
            if n < self.batch_max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
