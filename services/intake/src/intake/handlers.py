"""Use cases driven by Kafka events: load, decide (domain), save + outbox. Never commit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_contracts.envelope import Envelope
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from gridline_messaging import outbox

from . import domain, store

log = logging.getLogger(__name__)


async def on_dispatch_assigned(session: AsyncSession, env: Envelope[Any]) -> None:
    decision: DispatchAssignedV1 = env.data
    ticket = await store.get_ticket(session, decision.ticket_id, for_update=True)
    if ticket is None:
        raise LookupError(f"dispatch for unknown ticket {decision.ticket_id}")
    now = datetime.now(UTC)
    try:
        new, entry, events = domain.apply_dispatch(ticket, decision, now)
    except domain.TransitionRefused as exc:
        # A late or repeated decision for a ticket that moved on: record it, change nothing.
        log.warning("dispatch ignored: %s", exc.code)
        return
    await store.update_ticket(session, new, ticket.version)
    await store.add_history(session, ticket.id, entry, now, env.id)
    await outbox.add(session, store.outbox, [env.caused(e, source="intake") for e in events])


async def on_dispatch_needs_manual(session: AsyncSession, env: Envelope[Any]) -> None:
    decision: DispatchNeedsManualV1 = env.data
    ticket = await store.get_ticket(session, decision.ticket_id, for_update=True)
    if ticket is None:
        raise LookupError(f"decision for unknown ticket {decision.ticket_id}")
    try:
        new, entry = domain.apply_needs_manual(ticket, decision)
    except domain.TransitionRefused as exc:
        log.warning("needs-manual ignored: %s", exc.code)
        return
    await store.update_ticket(session, new, ticket.version)
    await store.add_history(session, ticket.id, entry, datetime.now(UTC), env.id)
