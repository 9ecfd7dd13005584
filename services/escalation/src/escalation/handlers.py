"""Arming clocks from lifecycle events and ticking due clocks. Load, decide (domain), save + outbox; no commit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import TicketDispatchedV1
from gridline_messaging import outbox

from . import domain, store
from .calendar import WorkCalendar
from .domain import Clock
from .policy import DEFAULT_POLICIES, SlaPolicy, UnknownPolicyError, resolve_policy

log = logging.getLogger(__name__)


class Escalation:
    def __init__(self, *, timezone: str) -> None:
        self.timezone = timezone

    async def calendar(self, session: AsyncSession, tenant: str) -> WorkCalendar:
        overrides = await store.overrides(session, tenant)
        years = {d.year for d in overrides} - {y for y in range(2004, 2027)}
        return WorkCalendar(self.timezone, overrides, override_years=years)

    async def policy_of(self, session: AsyncSession, c: Clock) -> SlaPolicy:
        """Exactly the (key, version) the clock was armed with."""
        p = await store.policy_version(session, c.tenant, c.policy_key, c.policy_version)
        if p is None:
            p = DEFAULT_POLICIES.get(c.policy_key)
            if p is None or p.version != c.policy_version:
                raise UnknownPolicyError(c.policy_key)
        return p

    async def on_ticket_dispatched(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketDispatchedV1 = env.data
        cal = await self.calendar(session, env.tenant)
        tenant_policies = await store.tenant_policies(session, env.tenant)
        policy = resolve_policy(e.sla_policy_key, e.priority, e.dispatched_at, cal, tenant_policies)
        clock, events = domain.arm_clock(e, env.tenant, policy, cal)
        clock, more = domain.tick(clock, datetime.now(UTC), policy, cal)  # a late event fires what is due
        if not await store.insert_clock(session, clock):
            log.info("ticket already has a clock; re-dispatch keeps it")
            return
        await self._publish(session, env, [*events, *more])

    async def tick_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        clocks = await store.claim_due(session, now, limit)
        for c in clocks:
            policy = await self.policy_of(session, c)
            cal = await self.calendar(session, c.tenant)
            new, events = domain.tick(c, now, policy, cal)
            await store.save_clock(session, new)
            await outbox.add(
                session,
                store.outbox,
                [
                    Envelope(
                        source="escalation",
                        tenant=c.tenant,
                        subject=str(c.ticket_id),
                        correlation_id=str(c.ticket_id),
                        data=e,
                    )
                    for e in events
                ],
            )
        return len(clocks)

    async def _publish(self, session: AsyncSession, env: Envelope[Any], events: list[EventData]) -> None:
        await outbox.add(session, store.outbox, [env.caused(e, source="escalation") for e in events])
