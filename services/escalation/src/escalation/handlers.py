"""Use cases: lifecycle events move clocks, the timer ticks due clocks. Load, decide (domain), save + outbox; no commit.

How the work-order lifecycle (domain §1.3) drives the clocks of one ticket:

- ``ticket.dispatched`` arms a sign clock (签收) and a handling clock (办理), both counted from the
  dispatch (a unit cannot win time by not signing, domain §1.3 practice note). A re-dispatch (改派
  after an approved 退单) stops whatever still runs and arms both again as a new round for the new unit.
- ``ticket.signed`` stops the sign clock (``on_time`` feeds 按时签收率).
- ``ticket.return_requested`` pauses the open clocks while the platform reviews the 退单;
  ``ticket.return_resolved`` resumes them if rejected (驳回: the unit carries on from the original
  dispatch, minus the review time) or stops them if approved (the ticket waits for 改派).
- ``ticket.extension_reviewed`` (approved) moves the handling deadline by the approved working days.
- ``ticket.replied`` stops the handling clock (and a sign clock still open: replying implies signing).
- ``ticket.reply_reviewed`` (rejected, 退回重办) and ``ticket.reopened`` (重办) arm a new handling
  round from that moment on the same policy snapshot.
- ``ticket.closed`` (办结) and ``ticket.merged`` (the child of a 并单) stop every clock of the ticket.

Platform reviews are timed against the reviewer (``review``): ``ticket.return_requested``,
``ticket.extension_requested`` and ``ticket.replied`` each arm a review clock from the limit of the
ticket's policy snapshot (its newest handling clock's key and version); ``ticket.return_resolved``,
``ticket.extension_reviewed`` and ``ticket.reply_reviewed`` stop it; 办结 and 并单 stop any left.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.escalation import EscalationRaisedV1, ReviewKind
from gridline_contracts.intake import (
    TicketCallbackRecordedV1,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketExtensionRequestedV1,
    TicketExtensionReviewedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketReopenedV1,
    TicketRepliedV1,
    TicketReplyReviewedV1,
    TicketReturnRequestedV1,
    TicketReturnResolvedV1,
    TicketSignedV1,
)
from gridline_messaging import outbox
from gridline_messaging.consumer import Handler

from . import deadline_store, domain, firing, metrics, repeat, review, store, supervision
from .domain import Clock, ClockError, SlaEvent
from .policy import DEFAULT_POLICIES, SlaPolicy, UnknownPolicyError, lookup_policy, match_rule, resolve_policy

log = logging.getLogger(__name__)


def plan_of(c: Clock, policy: SlaPolicy, cal: WorkCalendar) -> store.Plan:
    """The clock's firing plan, saved with every change of the clock (empty once it is not running)."""
    return firing.encode(domain.schedule(c, policy, cal), cal)


Step = Callable[[Clock, SlaPolicy, WorkCalendar], tuple[Clock, list[SlaEvent]]]


@dataclass(frozen=True)
class DeadlinePass:
    """What one pass of the supervision and review timers did."""

    moved: int
    events: Counter[str]


class Escalation:
    def __init__(
        self,
        *,
        timezone: str,
        gap_retry: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.timezone = timezone
        self.gap_retry = gap_retry
        # The wall clock lifecycle handlers tick with (tests replay a past week with a fixed one);
        # the timers pass their own ``now``.
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))

    async def calendar(self, session: AsyncSession, tenant: str) -> WorkCalendar:
        overrides = await store.overrides(session, tenant)
        years = {d.year for d in overrides} - {y for y in range(2004, 2027)}
        hours = await store.tenant_working_hours(session, tenant)
        if hours is None:
            return WorkCalendar(self.timezone, overrides, override_years=years)
        return WorkCalendar(self.timezone, overrides, hours, override_years=years)

    async def policy_of(self, session: AsyncSession, c: Clock) -> SlaPolicy:
        """Exactly the (key, version) the clock was armed with."""
        p = await store.policy_version(session, c.tenant, c.policy_key, c.policy_version)
        if p is None:
            p = DEFAULT_POLICIES.get(c.policy_key)
            if p is None or p.version != c.policy_version:
                raise UnknownPolicyError(c.policy_key)
        return p

    # -- lifecycle ---------------------------------------------------------------------------------

    async def on_ticket_received(self, session: AsyncSession, env: Envelope[Any]) -> None:
        """Where the report is, for the repeat-point list (reports without a place are not kept)."""
        e: TicketReceivedV1 = env.data
        await store.record_demand_type(session, e.ticket_id, env.tenant, e.demand_type)
        key = repeat.place_key(e.location, e.address, e.area_code)
        if key is None:
            return
        await store.record_place(
            session,
            ticket_id=e.ticket_id,
            tenant=env.tenant,
            ticket_no=e.ticket_no,
            place_key=key,
            category_code=e.category_code,
            lat=e.location.lat if e.location else None,
            lon=e.location.lon if e.location else None,
            address=e.address,
            received_at=e.received_at,
        )

    async def on_ticket_dispatched(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketDispatchedV1 = env.data
        await store.set_place_grid(session, e.ticket_id, e.grid_code)
        existing = await store.ticket_clocks(session, e.ticket_id, lock=True)
        if any(c.kind == "handle" and c.started_at == e.dispatched_at and c.unit_code == e.unit_code for c in existing):
            log.info("ticket %s: this dispatch already has its clocks", e.ticket_no)
            return
        if existing:  # a re-dispatch: a review still pending for the previous unit no longer matters
            await self._stop_reviews(session, env, e.ticket_id, e.dispatched_at, "redispatched")
        cal = await self.calendar(session, env.tenant)
        events: list[SlaEvent] = []
        for c in existing:
            if c.state != "stopped":
                new, more = domain.stop(c, e.dispatched_at, reason="redispatched")
                await store.save_clock(session, new, [])
                events += more
        tenant_policies = await store.tenant_policies(session, env.tenant)
        try:
            await self._arm(session, env, e, cal, tenant_policies, existing, events)
        except CalendarGapError as exc:
            # Never guess a deadline: the dispatch goes to the dead letters (replay it once the
            # year's holiday notice is entered as overrides) and the alert counter moves.
            metrics.CALENDAR_GAPS.inc()
            log.error("ticket %s: no working-calendar data for %s; enter that year's overrides", e.ticket_no, exc.day)
            raise

    async def _arm(
        self,
        session: AsyncSession,
        env: Envelope[Any],
        e: TicketDispatchedV1,
        cal: WorkCalendar,
        tenant_policies: dict[str, SlaPolicy],
        existing: list[Clock],
        events: list[SlaEvent],
    ) -> None:
        round_no = max((c.round for c in existing), default=-1) + 1
        policy = await self._policy_for(session, env.tenant, e, cal, tenant_policies)
        now = self.now()
        sign_due_at = None
        armed: list[tuple[Clock, SlaPolicy]] = []
        if policy.sign_policy_key is not None:
            sign_policy = lookup_policy(policy.sign_policy_key, tenant_policies)
            sign, _ = domain.arm_clock(e, env.tenant, sign_policy, cal, kind="sign", round=round_no)
            sign_due_at = sign.due_at
            armed.append((sign, sign_policy))
        handle, started = domain.arm_clock(e, env.tenant, policy, cal, round=round_no, sign_due_at=sign_due_at)
        events += started
        armed.insert(0, (handle, policy))
        for c, p in armed:
            c, more = domain.tick(c, now, p, cal)  # a late event fires what is already due
            await store.insert_clock(session, c, plan_of(c, p, cal))
            events += more
        await self._publish(session, env, events)

    async def _policy_for(
        self,
        session: AsyncSession,
        tenant: str,
        e: TicketDispatchedV1,
        cal: WorkCalendar,
        tenant_policies: dict[str, SlaPolicy],
    ) -> SlaPolicy:
        """The tenant's own rule for (category, priority, demand type) if one fits, else routing's
        ``sla_policy_key``; priority may shorten either, unless the rule names the priority itself."""
        rules = await store.sla_rules(session, tenant)
        rule = match_rule(rules, e.category_code, e.priority, await store.demand_type_of(session, e.ticket_id))
        if rule is not None and rule.policy_key is not None:
            if rule.priority != "*":
                return lookup_policy(rule.policy_key, tenant_policies)
            return resolve_policy(rule.policy_key, e.priority, e.dispatched_at, cal, tenant_policies)
        return resolve_policy(e.sla_policy_key, e.priority, e.dispatched_at, cal, tenant_policies)

    async def on_ticket_signed(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketSignedV1 = env.data
        await self._each(session, env, e.ticket_id, {"sign"}, lambda c, p, cal: domain.stop(c, e.at, "signed"))

    async def on_return_requested(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReturnRequestedV1 = env.data
        await self._start_review(session, env, "return", e.ticket_id, e.ticket_no, e.unit_code, e.at)
        await self._each(
            session,
            env,
            e.ticket_id,
            {"sign", "handle"},
            lambda c, p, cal: domain.pause(c, e.at, p, cal, reason="return_requested"),
        )

    async def on_return_resolved(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReturnResolvedV1 = env.data
        await self._stop_reviews(session, env, e.ticket_id, e.at, "reviewed", {"return"})
        if e.approved:
            step: Step = lambda c, p, cal: domain.stop(c, e.at, "returned")  # noqa: E731
        else:
            step = lambda c, p, cal: domain.resume(c, e.at, p, cal)  # noqa: E731
        await self._each(session, env, e.ticket_id, {"sign", "handle"}, step)

    async def on_extension_reviewed(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketExtensionReviewedV1 = env.data
        await self._stop_reviews(session, env, e.ticket_id, e.at, "reviewed", {"extension"})
        if not e.approved:
            return
        await self._each(
            session,
            env,
            e.ticket_id,
            {"handle"},
            lambda c, p, cal: domain.extend(c, e.at, p, cal, working_days=e.working_days),
        )

    async def on_extension_requested(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketExtensionRequestedV1 = env.data
        await self._start_review(session, env, "extension", e.ticket_id, e.ticket_no, e.unit_code, e.at)

    async def on_ticket_replied(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketRepliedV1 = env.data
        await self._start_review(session, env, "reply", e.ticket_id, e.ticket_no, e.unit_code, e.at)
        await self._each(
            session, env, e.ticket_id, {"sign", "handle"}, lambda c, p, cal: domain.stop(c, e.at, "replied")
        )

    async def on_reply_reviewed(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReplyReviewedV1 = env.data
        await self._stop_reviews(session, env, e.ticket_id, e.at, "reviewed", {"reply"})
        if not e.approved:
            await self._new_round(session, env, e.ticket_id, e.at, e.unit_code, "reply_rejected")

    async def on_ticket_reopened(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReopenedV1 = env.data
        await self._new_round(session, env, e.ticket_id, e.at, e.unit_code, "reopened")

    async def on_ticket_closed(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketClosedV1 = env.data
        await self._stop_reviews(session, env, e.ticket_id, e.at, "closed")
        await self._each(
            session, env, e.ticket_id, {"sign", "handle"}, lambda c, p, cal: domain.stop(c, e.at, "closed")
        )

    async def on_ticket_merged(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketMergedV1 = env.data
        await self._stop_reviews(session, env, e.ticket_id, e.at, "merged")
        await self._each(
            session, env, e.ticket_id, {"sign", "handle"}, lambda c, p, cal: domain.stop(c, e.at, "merged")
        )

    async def on_callback_recorded(self, session: AsyncSession, env: Envelope[Any]) -> None:
        """回访 result, kept for 满意率 and 解决率 of the unit that handled the ticket."""
        e: TicketCallbackRecordedV1 = env.data
        unit = e.unit_code
        if unit is None:
            handles = [c for c in await store.ticket_clocks(session, e.ticket_id) if c.kind == "handle"]
            if not handles:
                log.info("ticket %s: callback for a ticket never dispatched; not attributed", e.ticket_no)
                return
            unit = handles[-1].unit_code
        await store.record_callback(
            session,
            event_id=env.id,
            tenant=env.tenant,
            ticket_id=e.ticket_id,
            unit_code=unit,
            satisfaction=e.satisfaction,
            resolved=e.resolved,
            at=e.at,
        )

    def handlers(self) -> dict[type[EventData], Handler]:
        return {
            TicketReceivedV1: self.on_ticket_received,
            TicketDispatchedV1: self.on_ticket_dispatched,
            TicketSignedV1: self.on_ticket_signed,
            TicketReturnRequestedV1: self.on_return_requested,
            TicketReturnResolvedV1: self.on_return_resolved,
            TicketExtensionRequestedV1: self.on_extension_requested,
            TicketExtensionReviewedV1: self.on_extension_reviewed,
            TicketRepliedV1: self.on_ticket_replied,
            TicketReplyReviewedV1: self.on_reply_reviewed,
            TicketReopenedV1: self.on_ticket_reopened,
            TicketClosedV1: self.on_ticket_closed,
            TicketMergedV1: self.on_ticket_merged,
            TicketCallbackRecordedV1: self.on_callback_recorded,
        }

    async def _each(
        self, session: AsyncSession, env: Envelope[Any], ticket_id: Any, kinds: set[str], step: Step
    ) -> None:
        """Apply ``step`` to every open clock of these kinds, then fire what is already due."""
        clocks = [c for c in await store.ticket_clocks(session, ticket_id, lock=True) if c.state != "stopped"]
        clocks = [c for c in clocks if c.kind in kinds]
        if not clocks:
            log.info("ticket %s has no open %s clock for %s", ticket_id, "/".join(sorted(kinds)), env.type)
            return
        cal = await self.calendar(session, env.tenant)
        now = self.now()
        events: list[SlaEvent] = []
        for c in clocks:
            policy = await self.policy_of(session, c)
            try:
                new, more = step(c, policy, cal)
            except ClockError as exc:
                # A lifecycle fact we cannot apply (e.g. an extension that moves nothing) must not
                # block the ticket's later events: record it and carry on.
                metrics.REJECTED.labels(exc.code).inc()
                log.warning("ticket %s: %s not applied to the %s clock: %s", c.ticket_no, env.type, c.kind, exc)
                continue
            new, fired = domain.tick(new, now, policy, cal) if new.state == "running" else (new, [])
            await store.save_clock(session, new, plan_of(new, policy, cal))
            events += [*more, *fired]
        await self._publish(session, env, events)

    async def _new_round(
        self, session: AsyncSession, env: Envelope[Any], ticket_id: Any, at: datetime, unit: str | None, why: str
    ) -> None:
        handles = [c for c in await store.ticket_clocks(session, ticket_id, lock=True) if c.kind == "handle"]
        if not handles:
            log.info("ticket %s has no handling clock to restart (%s)", ticket_id, why)
            return
        last = handles[-1]
        cal = await self.calendar(session, env.tenant)
        policy = await self.policy_of(session, last)
        events: list[SlaEvent] = []
        if last.state != "stopped":
            last, events = domain.stop(last, at, why)
            await store.save_clock(session, last, [])
        new, more = domain.rearm(last, at, policy, cal, unit_code=unit)
        new, fired = domain.tick(new, self.now(), policy, cal)
        await store.insert_clock(session, new, plan_of(new, policy, cal))
        await self._publish(session, env, [*events, *more, *fired])

    async def _start_review(
        self,
        session: AsyncSession,
        env: Envelope[Any],
        kind: ReviewKind,
        ticket_id: Any,
        ticket_no: str,
        unit_code: str | None,
        at: datetime,
    ) -> None:
        """Arm the review clock of a request, on the limit of the ticket's policy snapshot."""
        handles = [c for c in await store.ticket_clocks(session, ticket_id) if c.kind == "handle"]
        if not handles:
            log.info("ticket %s: %s review requested before any dispatch; not timed", ticket_no, kind)
            return
        policy = await self.policy_of(session, handles[-1])
        cal = await self.calendar(session, env.tenant)
        rc, events, gap = review.start_or_weekdays(
            tenant=env.tenant,
            ticket_id=ticket_id,
            ticket_no=ticket_no,
            unit_code=unit_code or handles[-1].unit_code,
            review=kind,
            requested_at=at,
            policy=policy,
            calendar=cal,
        )
        if gap is not None:
            # Counted Monday–Friday rather than blocking the request (alerted, like supervision deadlines).
            metrics.CALENDAR_GAPS.inc()
            log.error("review deadline of %s needs calendar data for %s", ticket_no, gap.day)
        if rc is None or not await deadline_store.insert_review(session, rc):
            return
        rc, fired = review.tick(rc, self.now())  # a late request fires what is already due
        if fired:
            await deadline_store.save_review(session, rc)
        await outbox.add(session, store.outbox, [env.caused(ev, source="escalation") for ev in [*events, *fired]])

    async def _stop_reviews(
        self,
        session: AsyncSession,
        env: Envelope[Any],
        ticket_id: Any,
        at: datetime,
        reason: str,
        kinds: set[str] | None = None,
    ) -> None:
        """Stop the ticket's open review clocks (of these kinds; None: all)."""
        events: list[review.ReviewEvent] = []
        for rc in await deadline_store.ticket_reviews(session, ticket_id, open_only=True, lock=True):
            if kinds is None or rc.review in kinds:
                rc, more = review.stop(rc, at, reason)
                await deadline_store.save_review(session, rc)
                events += more
        await outbox.add(session, store.outbox, [env.caused(ev, source="escalation") for ev in events])

    async def fire_deadlines(self, session: AsyncSession, now: datetime, limit: int) -> DeadlinePass:
        """One pass of the supervision and review timers, in the caller's transaction.

        Announces up to ``limit`` newly opened supervision records (opened by the ladder, in SQL or
        here), fires up to ``limit`` overdue ones, and ticks up to ``limit`` due review clocks.
        Returns the most rows any of the three claims moved (the caller loops at once while that is
        ``limit``) and the events written, by type.
        """
        envelopes: list[Envelope[Any]] = []

        def envelope(tenant: str, ticket_id: Any, data: Any) -> Envelope[Any]:
            subject = str(ticket_id)
            return Envelope(source="escalation", tenant=tenant, subject=subject, correlation_id=subject, data=data)

        opened = await deadline_store.claim_unannounced(session, limit)
        envelopes += [envelope(s.tenant, s.ticket_id, supervision.opened_event(s, grid)) for s, grid in opened]
        await deadline_store.mark_announced(session, [s.id for s, _ in opened], now)
        late = await deadline_store.claim_overdue(session, now, limit)
        fired_ids = []
        for s, grid in late:
            event = supervision.overdue(s, now, grid)
            if event is not None:
                envelopes.append(envelope(s.tenant, s.ticket_id, event))
                fired_ids.append(s.id)
        await deadline_store.mark_overdue(session, fired_ids, now)
        reviews = await deadline_store.claim_due_reviews(session, now, limit)
        for rc in reviews:
            rc, events = review.tick(rc, now)
            await deadline_store.save_review(session, rc)
            envelopes += [envelope(rc.tenant, rc.ticket_id, ev) for ev in events]
        await outbox.add(session, store.outbox, envelopes)
        return DeadlinePass(
            moved=max(len(opened), len(late), len(reviews)), events=Counter(e.data.TYPE for e in envelopes)
        )

    async def close_supervision(
        self, session: AsyncSession, tenant: str, supervision_id: Any, verified_by: str, verification: str
    ) -> supervision.Supervision | None:
        """销号 and its ``supervision.closed`` event, in one transaction; None if there is no such record.

        Raises SupervisionError (already closed, verification missing)."""
        found = await store.supervisions(session, tenant, open_only=False, limit=1, lock_id=supervision_id)
        if not found:
            return None
        closed = supervision.close(found[0], self.now(), verified_by, verification)
        await store.save_supervision_closure(session, closed)
        subject = str(closed.ticket_id)
        event = supervision.closed_event(closed)
        closed_env: Envelope[Any] = Envelope(
            source="escalation", tenant=tenant, subject=subject, correlation_id=subject, data=event
        )
        await outbox.add(session, store.outbox, [closed_env])
        return closed

    async def _publish(self, session: AsyncSession, env: Envelope[Any], events: list[SlaEvent]) -> None:
        envelopes = [env.caused(e, source="escalation") for e in events]
        await outbox.add(session, store.outbox, envelopes)
        await self._open_supervisions(session, envelopes, {})

    async def _open_supervisions(
        self, session: AsyncSession, envelopes: list[Envelope[Any]], calendars: dict[str, WorkCalendar]
    ) -> None:
        """督办单/挂牌/约谈/问责 records for the ladder steps among ``envelopes``, same transaction."""
        records = []
        for env in envelopes:
            if isinstance(env.data, EscalationRaisedV1) and env.data.action in supervision.RECORD_KINDS:
                cal = calendars.get(env.tenant)
                if cal is None:
                    cal = calendars[env.tenant] = await self.calendar(session, env.tenant)
                # A report-back deadline in a year without calendar data is counted Monday–Friday
                # (alerted and logged) rather than blocking the ladder step.
                _, gap = supervision.report_back_due(env.data.scheduled_at, cal)
                if gap is not None:
                    metrics.CALENDAR_GAPS.inc()
                    log.error("supervision deadline of %s needs calendar data for %s", env.data.ticket_no, gap)
                record = supervision.open_for(env.tenant, env.data, cal)
                if record is not None:
                    records.append(record)
        await store.add_supervisions(session, records)

    # -- supervisor commands ---------------------------------------------------------------------

    async def acknowledge(self, session: AsyncSession, tenant: str, ticket_id: Any, kind: str, by: str) -> Clock | None:
        """Acknowledge the step the ticket's newest clock of ``kind`` is on; None if there is no such clock.

        Raises ClockError when nothing can be acknowledged."""
        clocks = [c for c in await store.ticket_clocks(session, ticket_id, lock=True) if c.kind == kind]
        if not clocks or clocks[-1].tenant != tenant:
            return None
        c = clocks[-1]
        policy = await self.policy_of(session, c)
        cal = await self.calendar(session, tenant)
        new, events = domain.acknowledge(c, self.now(), policy, cal, by)
        await store.save_clock(session, new, plan_of(new, policy, cal))
        subject = str(ticket_id)
        await outbox.add(
            session,
            store.outbox,
            [
                Envelope(source="escalation", tenant=tenant, subject=subject, correlation_id=subject, data=e)
                for e in events
            ],
        )
        return new

    # -- timer -------------------------------------------------------------------------------------

    async def tick_due(self, session: AsyncSession, now: datetime, limit: int) -> list[datetime]:
        """Fire every due milestone of up to ``limit`` clocks, in one transaction (the caller's).

        Returns the due times of the clocks it claimed (the timer measures its lag from them).
        Almost every clock fires set-based from its precomputed plan (``store.fire_planned``: one
        SQL statement, nothing per clock in Python). Clocks due past the end of their plan (a
        calendar-gap wake-up, a plan cut at ``domain.PLAN_MAX``, rows older than plans) are ticked
        here and get a new plan. Both claims use SKIP LOCKED, so replicas share the work.
        """
        fired = await store.fire_planned(session, now, limit)
        metrics.STEPS.inc(fired.events)
        dues = fired.dues
        if fired.clocks < limit:
            dues += await self._tick_unplanned(session, now, limit - fired.clocks)
        return dues

    async def _tick_unplanned(self, session: AsyncSession, now: datetime, limit: int) -> list[datetime]:
        """``domain.tick`` per clock for the few due clocks without a plan; calendars and policies
        loaded once per tenant per batch. A clock whose next step needs calendar data nobody has yet
        is retried after ``gap_retry`` (and counted for the alert) instead of blocking the batch."""
        clocks = await store.claim_due(session, now, limit)
        if not clocks:
            return []
        calendars: dict[str, WorkCalendar] = {}
        policies: dict[tuple[str, str, int], SlaPolicy] = {}
        ticked: list[tuple[Clock, store.Plan]] = []
        envelopes: list[Envelope[Any]] = []
        for c in clocks:
            cal = calendars.get(c.tenant)
            if cal is None:
                cal = calendars[c.tenant] = await self.calendar(session, c.tenant)
            pk = (c.tenant, c.policy_key, c.policy_version)
            policy = policies.get(pk)
            if policy is None:
                policy = policies[pk] = await self.policy_of(session, c)
            try:
                new, events = domain.tick(c, now, policy, cal)
            except CalendarGapError as exc:
                metrics.CALENDAR_GAPS.inc()
                log.error(
                    "calendar has no data for %s (ticket %s); enter overrides for that year", exc.day, c.ticket_no
                )
                ticked.append((replace(c, next_due_at=now + self.gap_retry), []))
                continue
            ticked.append((new, plan_of(new, policy, cal)))
            subject = str(c.ticket_id)
            envelopes += [
                Envelope(source="escalation", tenant=c.tenant, subject=subject, correlation_id=subject, data=e)
                for e in events
            ]
        await store.save_ticked(session, ticked)
        await store.add_outbox_bulk(session, envelopes)
        await self._open_supervisions(session, envelopes, calendars)
        metrics.STEPS.inc(len(envelopes))
        return [c.next_due_at for c in clocks if c.next_due_at is not None]
