"""The durable timer: every clock's next due time is a row; replicas share the work with SKIP LOCKED."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_calendar import CalendarGapError

from . import metrics, rankings, store
from .handlers import Escalation

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        escalation: Escalation,
        interval_s: float,
        batch_max: int,
        rate_gauge_k: int = 10,
        rate_gauge_interval_s: float = 300.0,
    ) -> None:
        self.sessions = sessions
        self.escalation = escalation
        self.interval_s = interval_s
        self.batch_max = batch_max
        self.rate_gauge_k = rate_gauge_k
        self.rate_gauge_interval_s = rate_gauge_interval_s
        self._stopping = asyncio.Event()
        self._gauges_at = 0.0
        self._rates_at = -float("inf")

    async def stop(self) -> None:
        self._stopping.set()

    def observe(self, dues: list[datetime], committed_at: datetime) -> None:
        """Lag from each clock's due time to the commit that fired it."""
        for due in dues:
            metrics.TIMER_LAG.observe(max((committed_at - due).total_seconds(), 0.0))

    async def gauge_loop(self) -> None:
        """Refresh the gauges beside the firing loop, never inside it: their queries scan many clocks
        and took seconds on a million armed ones, which the firing loop must not wait for."""
        while not self._stopping.is_set():
            try:
                await self.gauges()
            except Exception:
                log.exception("gauge refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=5)

    async def gauges(self) -> None:
        """Refresh the bounded gauges (per tenant) now and then, not per tick."""
        now = time.monotonic()
        if now - self._gauges_at < 30:
            return
        self._gauges_at = now
        async with self.sessions() as s:
            for tenant, n in (await store.overdue_by_tenant(s, datetime.now(UTC))).items():
                metrics.OVERDUE_OPEN.labels(tenant).set(n)
            open_ = await store.open_clocks(s)
        metrics.OPEN_CLOCKS.clear()  # no await from here on: combinations that emptied vanish
        for tenant, kind, colour, level, n in open_:
            metrics.OPEN_CLOCKS.labels(tenant, kind, colour, level).set(n)
        if self.rate_gauge_k and now - self._rates_at >= self.rate_gauge_interval_s:
            self._rates_at = now
            await self.rate_gauges()

    async def rate_gauges(self) -> None:
        """This month's rates of the units on each tenant's 红黑榜 (a month moves slowly: every
        ``rate_gauge_interval_s``). The whole gauge is replaced, so units that left the lists vanish."""
        tz = ZoneInfo(self.escalation.timezone)
        now = datetime.now(tz)
        start, end = rankings.period_bounds("month", now.date(), tz)
        rows: list[tuple[str, str, str, float]] = []
        async with self.sessions() as s:
            for tenant in await store.active_tenants(s):
                scored = rankings.score_units(await store.unit_counts(s, tenant, start, end, now))
                rows += [(tenant, *r) for r in rankings.gauge_rows(scored, self.rate_gauge_k)]
        metrics.UNIT_RATE.clear()  # no await from here on: a scrape never sees half a refresh
        for tenant, unit, rate, value in rows:
            metrics.UNIT_RATE.labels(tenant, unit, rate).set(value)

    async def run(self) -> None:
        gauges = asyncio.create_task(self.gauge_loop())
        try:
            await self._fire_loop()
        finally:
            self._stopping.set()
            await gauges

    async def _fire_loop(self) -> None:
        while not self._stopping.is_set():
            n = 0
            try:
                async with self.sessions() as s, s.begin():
                    dues = await self.escalation.tick_due(s, datetime.now(UTC), self.batch_max)
                n = len(dues)
                metrics.TICKS.inc(n)
                self.observe(dues, datetime.now(UTC))
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
