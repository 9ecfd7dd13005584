"""Use cases driven by Kafka events: load, decide (domain), save + outbox. Never commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.escalation import (
    SlaBreachedV1,
    SlaClockExtendedV1,
    SlaClockResumedV1,
    SlaClockStartedV1,
    SlaWarnedV1,
)
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)
from gridline_messaging import outbox

from . import domain, store

log = logging.getLogger(__name__)


async def save_decision(
    session: AsyncSession,
    before: domain.Ticket,
    decision: domain.Decision,
    now: datetime,
    *,
    envelope_for: Callable[[EventData], Envelope[Any]],
    cause: uuid.UUID | None = None,
) -> None:
    """State, history and events of one decision, in the caller's transaction."""
    if decision.ticket is before:
        return
    await store.update_ticket(session, decision.ticket, before.version)
    for entry in decision.history:
        await store.add_history(session, before.id, entry, now, cause)
    if decision.events:
        await outbox.add(session, store.outbox, [envelope_for(e) for e in decision.events])


async def _load(session: AsyncSession, ticket_id: uuid.UUID) -> domain.Ticket:
    ticket = await store.get_ticket(session, ticket_id, for_update=True)
    if ticket is None:
        # Routing only decides on tickets intake announced; an unknown id is a bug → retried, then DLQ.
        raise LookupError(f"event for unknown ticket {ticket_id}")
    return ticket


def _caused(env: Envelope[Any]) -> Callable[[EventData], Envelope[Any]]:
    return lambda e: env.caused(e, source="intake")


async def on_dispatch_assigned(session: AsyncSession, env: Envelope[Any]) -> None:
    decision: DispatchAssignedV1 = env.data
    ticket = await _load(session, decision.ticket_id)
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
    ticket = await _load(session, decision.ticket_id)
    try:
        new, entry = domain.apply_needs_manual(ticket, decision)
    except domain.TransitionRefused as exc:
        log.warning("needs-manual ignored: %s", exc.code)
        return
    await store.update_ticket(session, new, ticket.version)
    await store.add_history(session, ticket.id, entry, datetime.now(UTC), env.id)


async def _apply(
    session: AsyncSession,
    env: Envelope[Any],
    ticket_id: uuid.UUID,
    decide: Callable[[domain.Ticket, datetime], domain.Decision],
) -> None:
    ticket = await _load(session, ticket_id)
    now = datetime.now(UTC)
    try:
        decision = decide(ticket, now)
    except domain.TransitionRefused as exc:
        # The ticket moved on (e.g. a unit's action raced routing's decision): the history keeps the
        # state that won; the refused decision is logged, not dead-lettered, as nothing can fix it.
        log.warning("%s ignored for ticket in %s: %s", env.type, ticket.status, exc.code)
        return
    await save_decision(session, ticket, decision, now, envelope_for=_caused(env), cause=env.id)


async def on_duplicate_found(session: AsyncSession, env: Envelope[Any]) -> None:
    found: DispatchDuplicateFoundV1 = env.data
    parent = await store.get_ticket(session, found.parent_ticket_id)
    parent_no = parent.ticket_no if parent else str(found.parent_ticket_id)
    await _apply(session, env, found.ticket_id, lambda t, now: domain.apply_duplicate(t, found, parent_no, now))


async def on_unmerged(session: AsyncSession, env: Envelope[Any]) -> None:
    split: DispatchUnmergedV1 = env.data
    await _apply(session, env, split.ticket_id, lambda t, now: domain.apply_unmerge(t, split, now))


async def on_return_reviewed(session: AsyncSession, env: Envelope[Any]) -> None:
    review: DispatchReturnReviewedV1 = env.data
    await _apply(session, env, review.ticket_id, lambda t, now: domain.apply_return_review(t, review, now))


async def _clock(session: AsyncSession, ticket_id: uuid.UUID, **facts: Any) -> None:
    ticket = await store.get_ticket(session, ticket_id, for_update=True)
    if ticket is None:
        log.warning("clock event for unknown ticket %s", ticket_id)
        return
    new = domain.apply_clock(ticket, **facts)
    if new is not ticket:
        await store.update_ticket(session, new, ticket.version)


def _handling(e: EventData) -> bool:
    # Escalation may run a separate 签收 clock; only the handling clock's deadline is "the" deadline
    # (extension requests are guarded by it). Events without the field are handling-clock events.
    return getattr(e, "clock", "handle") == "handle"


async def on_clock_started(session: AsyncSession, env: Envelope[Any]) -> None:
    e: SlaClockStartedV1 = env.data
    if _handling(e):
        await _clock(session, e.ticket_id, due_at=e.due_at, colour="green")


async def on_clock_moved(session: AsyncSession, env: Envelope[Any]) -> None:
    e: SlaClockExtendedV1 | SlaClockResumedV1 = env.data
    if _handling(e):
        await _clock(session, e.ticket_id, due_at=e.due_at, colour="green")


async def on_warned(session: AsyncSession, env: Envelope[Any]) -> None:
    e: SlaWarnedV1 = env.data
    await _clock(session, e.ticket_id, due_at=e.due_at if _handling(e) else None, colour="yellow")


async def on_breached(session: AsyncSession, env: Envelope[Any]) -> None:
    e: SlaBreachedV1 = env.data
    await _clock(session, e.ticket_id, due_at=e.due_at if _handling(e) else None, colour="red")


CLOCK_EVENTS: Sequence[type[EventData]] = (
    SlaClockStartedV1,
    SlaClockExtendedV1,
    SlaClockResumedV1,
    SlaWarnedV1,
    SlaBreachedV1,
)
