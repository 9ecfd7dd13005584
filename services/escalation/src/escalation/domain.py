"""SLA clocks as pure decisions: every function returns ``(new_clock, events)`` and reads no clock.

A clock is armed when a ticket is dispatched and then moves only through these functions: ``tick``
(time passed), ``pause``/``resume`` (e.g. waiting for platform review or 回访), ``extend`` (an approved
延期) and ``stop`` (办结, or the step it times is done). ``Clock.next_due_at`` is the next instant at
which ``tick`` has something to do, or None; it is what the durable timer table indexes.

Milestones: the warning (黄牌, ``warn_at``), the breach (红牌, ``due_at``) and the ladder steps in
the order the policy lists them; a step never fires before its anchor milestone nor before the step
ahead of it. ``tick`` fires everything that is due at ``now`` in time order, each once: after a
backlog or a restart the missed milestones fire late, in the order they fell due, and a second
``tick`` at the same ``now`` fires nothing. Each event carries its scheduled time and ``now``.

Pausing stops time from counting: on resume, every milestone not yet reached moves later by the paused
time as the policy's limit counts it (working time for working-day and working-hour limits, elapsed
time for natural hours), and ladder steps still to come after a milestone that already fired move by
the time paused since it fired. An approved extension moves the deadline and re-arms the warning,
the breach and the steps anchored on them if the new times are still ahead.

The clock records the policy key and version it was armed with; ``tick`` and friends refuse a
different policy, so a tenant editing its policy never changes open tickets (reference §5.1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, TypedDict

from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.escalation import (
    ClockKind,
    EscalationRaisedV1,
    SlaAcknowledgedV1,
    SlaBreachedV1,
    SlaClockExtendedV1,
    SlaClockPausedV1,
    SlaClockResumedV1,
    SlaClockStartedV1,
    SlaClockStoppedV1,
    SlaWarnedV1,
)
from gridline_contracts.intake import TicketDispatchedV1

from .policy import DueSource, EscalationStep, SlaPolicy, measure, plan_deadlines, shift

ClockState = Literal["running", "paused", "stopped"]
Colour = Literal["green", "yellow", "red"]
SlaEvent = (
    SlaClockStartedV1
    | SlaWarnedV1
    | SlaBreachedV1
    | EscalationRaisedV1
    | SlaClockExtendedV1
    | SlaClockPausedV1
    | SlaClockResumedV1
    | SlaClockStoppedV1
    | SlaAcknowledgedV1
)

_ZERO = timedelta(0)


class ClockError(ValueError):
    """A clock operation that cannot be applied (stable ``code`` for the edge to report)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Clock:
    """The SLA clock of one ticket. Times are tz-aware; the store keeps them in UTC.

    ``warn_at``/``due_at`` are the current warning time and deadline (moved by pauses and extensions
    until they fire). ``next_step`` indexes the policy's ladder; ``next_step_at`` is when that step
    fires, known once its anchor milestone has fired. ``held_after_warn``/``held_after_breach`` are
    the paused time since each of those fired, which delays the ladder steps anchored on it.
    ``level`` is the code of the highest ladder step raised so far (the supervision level).
    ``calendar_gap`` is the day whose missing calendar data keeps ``next_step_at`` unknown.
    ``(ticket_id, kind, round)`` identifies the clock: ``sign`` times 签收, ``handle`` times 办理.
    """

    ticket_id: uuid.UUID
    ticket_no: str
    tenant: str
    unit_code: str
    grid_code: str | None
    policy_key: str
    policy_version: int
    requested_policy_key: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    due_source: DueSource
    provisional: bool = False
    state: ClockState = "running"
    warned: bool = False
    breached: bool = False
    next_step: int = 0
    repeat_no: int = 0
    next_step_at: datetime | None = None
    level: str | None = None
    paused_at: datetime | None = None
    paused_for: timedelta = _ZERO
    held_after_warn: timedelta = _ZERO
    held_after_breach: timedelta = _ZERO
    extension_no: int = 0
    stopped_at: datetime | None = None
    calendar_gap: date | None = None
    next_due_at: datetime | None = None
    kind: ClockKind = "handle"
    round: int = 0
    stop_reason: str | None = None

    @property
    def colour(self) -> Colour:
        if self.breached:
            return "red"
        return "yellow" if self.warned else "green"


def arm_clock(
    dispatched: TicketDispatchedV1,
    tenant: str,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    *,
    kind: ClockKind = "handle",
    round: int = 0,
    started_at: datetime | None = None,
    sign_due_at: datetime | None = None,
) -> tuple[Clock, list[SlaEvent]]:
    """Start a clock of a dispatched ticket on ``policy`` (already resolved, see ``resolve_policy``).

    The clock starts at ``started_at`` (default ``dispatched_at``; a 重办 starts a new handling round
    later). Nothing fires here, even if the ticket arrives late: run ``tick(clock, now, …)`` right
    after to fire what is already due. The platform's deadline only bounds the handling clock. A
    sign clock announces nothing: its deadline travels as ``sign_due_at`` on the handling clock's
    ``sla.clock_started`` (one message to the unit, not two). Raises CalendarGapError when the
    deadline needs calendar data nobody has (e.g. 2027 without the override table filled in).
    """
    start = started_at if started_at is not None else dispatched.dispatched_at
    started = _aware(start, "started_at").astimezone(calendar.tz)
    plan = plan_deadlines(policy, started, calendar, dispatched.platform_due_at if kind == "handle" else None)
    clock = Clock(
        ticket_id=dispatched.ticket_id,
        ticket_no=dispatched.ticket_no,
        tenant=tenant,
        unit_code=dispatched.unit_code,
        grid_code=dispatched.grid_code,
        policy_key=policy.key,
        policy_version=policy.version,
        requested_policy_key=dispatched.sla_policy_key,
        started_at=started,
        warn_at=plan.warn_at,
        due_at=plan.due_at,
        due_source=plan.due_source,
        provisional=plan.provisional,
        kind=kind,
        round=round,
    )
    if dispatched.category_code in policy.veto_categories:
        # 一票否决: straight to the top rung, due at once (the next tick fires it; warnings still follow).
        clock = replace(clock, next_step=len(policy.ladder) - 1, next_step_at=started)
    clock = _settle(clock, policy, calendar)
    if kind == "sign":
        return clock, []
    limit = policy.describe() if plan.due_source == "policy" else f"platform deadline (policy: {policy.describe()})"
    started_event = SlaClockStartedV1(
        **_ids(clock),
        started_at=clock.started_at,
        warn_at=clock.warn_at,
        due_at=clock.due_at,
        time_limit=limit,
        sign_due_at=sign_due_at,
    )
    return clock, [started_event]


def rearm(
    previous: Clock, at: datetime, policy: SlaPolicy, calendar: WorkCalendar, *, unit_code: str | None = None
) -> tuple[Clock, list[SlaEvent]]:
    """A new round of ``previous``'s kind starting at ``at`` (退回重办, 重办), on the same policy snapshot.

    The previous clock must already be stopped (the caller stops it first); the new one is a fresh
    window: its deadline is counted from ``at``, not carried over. A handling round announces itself
    with ``sla.clock_started`` like the first one.
    """
    _check_policy(previous, policy)
    if previous.state != "stopped":
        raise ClockError("clock_still_running", f"stop round {previous.round} of {previous.ticket_no} first")
    started = _aware(at, "at").astimezone(calendar.tz)
    plan = plan_deadlines(policy, started, calendar)
    clock = Clock(
        ticket_id=previous.ticket_id,
        ticket_no=previous.ticket_no,
        tenant=previous.tenant,
        unit_code=unit_code or previous.unit_code,
        grid_code=previous.grid_code,
        policy_key=policy.key,
        policy_version=policy.version,
        requested_policy_key=previous.requested_policy_key,
        started_at=started,
        warn_at=plan.warn_at,
        due_at=plan.due_at,
        due_source=plan.due_source,
        provisional=plan.provisional,
        kind=previous.kind,
        round=previous.round + 1,
    )
    clock = _settle(clock, policy, calendar)
    if clock.kind == "sign":
        return clock, []
    started_event = SlaClockStartedV1(
        **_ids(clock),
        started_at=clock.started_at,
        warn_at=clock.warn_at,
        due_at=clock.due_at,
        time_limit=policy.describe(),
    )
    return clock, [started_event]


def tick(clock: Clock, now: datetime, policy: SlaPolicy, calendar: WorkCalendar) -> tuple[Clock, list[SlaEvent]]:
    """Fire every milestone due at ``now``, in time order, each once; a paused or stopped clock fires nothing.

    Raises CalendarGapError when the next ladder step is waiting for calendar data that is still
    missing at ``now`` and nothing else was due: the timer loop should alert and retry later (once the
    override table has the year), never guess. Anything that could fire is returned first.
    """
    _check_policy(clock, policy)
    _aware(now, "now")
    if clock.state != "running":
        return clock, []
    events: list[SlaEvent] = []
    c = _settle(clock, policy, calendar)
    while (due := _next_milestone(c, now)) is not None:
        if due == "warn":
            events.append(
                SlaWarnedV1(
                    **_ids(c),
                    grid_code=c.grid_code,
                    warn_at=c.warn_at,
                    due_at=c.due_at,
                    detected_at=now,
                    extension_no=c.extension_no,
                )
            )
            c = replace(c, warned=True)
        elif due == "breach":
            events.append(
                SlaBreachedV1(
                    **_ids(c), grid_code=c.grid_code, due_at=c.due_at, detected_at=now, extension_no=c.extension_no
                )
            )
            c = replace(c, breached=True)
        else:
            assert c.next_step_at is not None
            step = policy.ladder[c.next_step]
            events.append(
                EscalationRaisedV1(
                    **_ids(c),
                    grid_code=c.grid_code,
                    step_index=c.next_step,
                    step_code=step.code,
                    action=step.action,
                    recipients=list(step.notify),
                    repeat_no=c.repeat_no,
                    scheduled_at=c.next_step_at,
                    raised_at=now,
                    due_at=c.due_at,
                    extension_no=c.extension_no,
                )
            )
            c = _advance(c, step)
        c = _settle(c, policy, calendar)
    gap_start = _gap_start(c, calendar)
    if not events and c.calendar_gap is not None and gap_start is not None and now >= gap_start:
        raise CalendarGapError(c.calendar_gap)
    return c, events


@dataclass(frozen=True)
class Planned:
    """One instant of a clock's future: what ``tick`` fires at ``at`` and the clock after it."""

    at: datetime
    events: list[SlaEvent]  # stamped ``detected_at``/``raised_at`` = ``at``; the timer stamps the real time
    after: Clock


PLAN_MAX = 64  # a safety bound; a longer future is planned again once the timer reaches its end


def schedule(clock: Clock, policy: SlaPolicy, calendar: WorkCalendar, *, limit: int = PLAN_MAX) -> list[Planned]:
    """Everything the running ``clock`` will fire if nothing else happens to it, in time order.

    Computed once when a clock is armed or changed, so the timer can fire milestones set-based in
    SQL without running ``tick`` per clock: each entry is exactly what ``tick(clock, at)`` returns,
    so firing entry k after entries 0..k-1 equals ticking (late firing only changes the stamps).
    The plan stops before a wake-up that is only waiting for missing calendar data (the timer ticks
    such a clock the ordinary way), and after ``limit`` instants.
    """
    if clock.state != "running":
        return []
    _check_policy(clock, policy)
    out: list[Planned] = []
    c = _settle(clock, policy, calendar)
    while c.next_due_at is not None and len(out) < limit:
        at = c.next_due_at
        if _next_milestone(c, at) is None:
            break  # only the calendar-gap wake-up is left
        c, events = tick(c, at, policy, calendar)
        out.append(Planned(at, events, c))
    return out


def pause(
    clock: Clock, at: datetime, policy: SlaPolicy, calendar: WorkCalendar, reason: str | None = None
) -> tuple[Clock, list[SlaEvent]]:
    """Stop time from counting at ``at``. What was already due at ``at`` fires first (returned too).

    Pausing a clock that is not running changes nothing.
    """
    _check_policy(clock, policy)
    if clock.state != "running":
        return clock, []
    c, events = tick(clock, at, policy, calendar)
    c = replace(c, state="paused", paused_at=at.astimezone(calendar.tz), next_due_at=None)
    events.append(SlaClockPausedV1(**_ids(c), paused_at=at, reason=reason))
    return c, events


def resume(clock: Clock, at: datetime, policy: SlaPolicy, calendar: WorkCalendar) -> tuple[Clock, list[SlaEvent]]:
    """Count time again from ``at``; every milestone still ahead moves later by the paused time.

    Resuming a clock that is not paused changes nothing. Call ``tick`` afterwards as usual.
    """
    _check_policy(clock, policy)
    _aware(at, "at")
    if clock.state != "paused" or clock.paused_at is None:
        return clock, []
    if at < clock.paused_at:
        raise ClockError("resume_before_pause", f"resumed at {at.isoformat()} before paused at {clock.paused_at}")
    kind = policy.limit.kind
    span = measure(kind, clock.paused_at, at, calendar)
    c = replace(
        clock,
        state="running",
        paused_at=None,
        paused_for=clock.paused_for + span,
        warn_at=clock.warn_at if clock.warned else shift(kind, clock.warn_at, span, calendar),
        due_at=clock.due_at if clock.breached else shift(kind, clock.due_at, span, calendar),
        held_after_warn=clock.held_after_warn + span if clock.warned else _ZERO,
        held_after_breach=clock.held_after_breach + span if clock.breached else _ZERO,
        next_step_at=None,  # recomputed by _settle from its anchor and the new held time
    )
    c = replace(c, provisional=c.provisional or calendar.is_provisional(c.started_at, c.due_at))
    c = _settle(c, policy, calendar)
    resumed = SlaClockResumedV1(**_ids(c), paused_at=clock.paused_at, resumed_at=at, warn_at=c.warn_at, due_at=c.due_at)
    return c, [resumed]


def extend(
    clock: Clock,
    at: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    *,
    until: datetime | None = None,
    working_days: int | None = None,
) -> tuple[Clock, list[SlaEvent]]:
    """Apply an approved 延期 at ``at``: the deadline becomes ``until``, or ``working_days`` after the old one.

    The warning is recomputed from the policy for the new deadline. A warning, breach or ladder step
    whose new time is still ahead is re-armed and fires again when reached (with the new
    ``extension_no``). The new deadline must be later than the old one and than ``at``. A stopped
    clock is final: extending it changes nothing.
    """
    _check_policy(clock, policy)
    _aware(at, "at")
    if clock.state == "stopped":
        return clock, []
    if (until is None) == (working_days is None):
        raise ClockError("bad_extension", "give exactly one of until and working_days")
    if until is not None:
        new_due = _aware(until, "until").astimezone(calendar.tz)
    else:
        assert working_days is not None
        if working_days < 1:
            raise ClockError("bad_extension", f"working_days must be at least 1, got {working_days}")
        new_due = calendar.add_working_days(clock.due_at, working_days)
    if new_due <= clock.due_at:
        raise ClockError("bad_extension", f"new deadline {new_due.isoformat()} is not after {clock.due_at.isoformat()}")
    if new_due <= at:
        raise ClockError("bad_extension", f"new deadline {new_due.isoformat()} is already past at {at.isoformat()}")
    new_warn = policy.warn_time(clock.started_at, new_due, calendar)
    warned = clock.warned and new_warn <= at
    reset: set[str] = {"breach"} if clock.breached else set()
    if clock.warned and not warned:
        reset.add("warn")
    first_reset = next((i for i, s in enumerate(policy.ladder) if s.anchor in reset), len(policy.ladder))
    c = replace(
        clock,
        warn_at=new_warn,
        due_at=new_due,
        due_source="extension",
        warned=warned,
        breached=False,
        held_after_warn=clock.held_after_warn if warned else _ZERO,
        held_after_breach=_ZERO,
        extension_no=clock.extension_no + 1,
        provisional=calendar.is_provisional(clock.started_at, new_due),
        next_step_at=None,  # recomputed by _settle from the moved anchors
    )
    if first_reset <= clock.next_step:
        c = replace(
            c,
            next_step=first_reset,
            repeat_no=0,
            level=policy.ladder[first_reset - 1].code if first_reset > 0 else None,
        )
    c = _settle(c, policy, calendar)
    extended = SlaClockExtendedV1(
        **_ids(c),
        previous_due_at=clock.due_at,
        due_at=c.due_at,
        warn_at=c.warn_at,
        extended_at=at,
        extension_no=c.extension_no,
        was_breached=clock.breached,
    )
    return c, [extended]


def stop(clock: Clock, at: datetime, reason: str | None = None) -> tuple[Clock, list[SlaEvent]]:
    """End the clock at ``at`` (办结, or the step it times is done); nothing fires after this.

    Milestones that were due but not yet ticked do not fire any more; ``on_time`` in the event says
    whether ``at`` was within the deadline. Stopping a stopped clock changes nothing.
    """
    _aware(at, "at")
    if clock.state == "stopped":
        return clock, []
    c = replace(clock, state="stopped", stopped_at=at, stop_reason=reason, paused_at=None, next_due_at=None)
    stopped = SlaClockStoppedV1(
        **_ids(c),
        started_at=c.started_at,
        due_at=c.due_at,
        stopped_at=at,
        on_time=at <= c.due_at,
        reason=reason,
    )
    return c, [stopped]


def acknowledge(
    clock: Clock, at: datetime, policy: SlaPolicy, calendar: WorkCalendar, by: str
) -> tuple[Clock, list[SlaEvent]]:
    """Acknowledge the step the clock is on: a repeating step stops repeating (PagerDuty's ack).

    Only the current level can be acknowledged, and only while it still has repeats to come;
    the ladder's later steps, the warning and the breach are unaffected.
    """
    _check_policy(clock, policy)
    _aware(at, "at")
    if clock.state == "stopped":
        raise ClockError("clock_stopped", "the clock has ended; nothing to acknowledge")
    step = policy.ladder[clock.next_step] if clock.next_step < len(policy.ladder) else None
    if step is None or clock.level != step.code or clock.repeat_no == 0:
        raise ClockError("nothing_to_acknowledge", "no repeating step is in progress on this clock")
    cancelled = step.repeat_max - clock.repeat_no + 1
    c = _settle(replace(clock, next_step=clock.next_step + 1, repeat_no=0, next_step_at=None), policy, calendar)
    acked = SlaAcknowledgedV1(**_ids(c), step_code=step.code, repeats_cancelled=cancelled, acknowledged_at=at, by=by)
    return c, [acked]


# -- internals -----------------------------------------------------------------------------------


def replace(c: Clock, **changes: object) -> Clock:
    """``dataclasses.replace`` for Clock without re-running ``__init__``: the timer's hot path
    replaces a clock several times per milestone, and the generic version costs more than the tick."""
    new = object.__new__(Clock)
    new.__dict__.update(c.__dict__)
    new.__dict__.update(changes)
    return new


class _Ids(TypedDict):
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str
    policy_key: str
    clock: ClockKind
    round: int


def _ids(c: Clock) -> _Ids:
    return {
        "ticket_id": c.ticket_id,
        "ticket_no": c.ticket_no,
        "unit_code": c.unit_code,
        "policy_key": c.policy_key,
        "clock": c.kind,
        "round": c.round,
    }


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ClockError("naive_time", f"{name} must be timezone-aware, got {value.isoformat()}")
    return value


def _check_policy(clock: Clock, policy: SlaPolicy) -> None:
    if (policy.key, policy.version) != (clock.policy_key, clock.policy_version):
        raise ClockError(
            "policy_mismatch",
            f"clock of {clock.ticket_no} runs on {clock.policy_key} v{clock.policy_version}, "
            f"not {policy.key} v{policy.version}: pass the snapshot it was armed with",
        )


def _next_milestone(c: Clock, now: datetime) -> Literal["warn", "breach", "step"] | None:
    """The earliest milestone due at ``now``; at the same instant the warning and breach go first."""
    due: list[tuple[datetime, int, Literal["warn", "breach", "step"]]] = []
    if not c.warned and c.warn_at <= now:
        due.append((c.warn_at, 0, "warn"))
    if not c.breached and c.due_at <= now:
        due.append((c.due_at, 1, "breach"))
    if c.next_step_at is not None and c.next_step_at <= now:
        due.append((c.next_step_at, 2, "step"))
    return min(due)[2] if due else None


def _anchor_fired(c: Clock, step: EscalationStep) -> bool:
    return step.anchor == "start" or (step.anchor == "warn" and c.warned) or (step.anchor == "breach" and c.breached)


def _step_time(c: Clock, step: EscalationStep, policy: SlaPolicy, calendar: WorkCalendar) -> datetime:
    """When occurrence ``c.repeat_no`` of ``step`` is due: anchor + offset (+ repeats), moved by paused time."""
    if step.anchor == "start":
        anchor, held = c.started_at, c.paused_for
    elif step.anchor == "warn":
        anchor, held = c.warn_at, c.held_after_warn
    else:
        anchor, held = c.due_at, c.held_after_breach
    t = shift(policy.limit.kind, step.offset.after(anchor, calendar), held, calendar)
    if step.repeat_every is not None:
        for _ in range(c.repeat_no):
            t = step.repeat_every.after(t, calendar)
    return t


def _advance(c: Clock, step: EscalationStep) -> Clock:
    """The clock after ``step`` fired: its next repeat, or the next step (its time is set by _settle)."""
    if step.repeat_every is not None and c.repeat_no < step.repeat_max:
        return replace(c, repeat_no=c.repeat_no + 1, next_step_at=None, level=step.code)
    return replace(c, next_step=c.next_step + 1, repeat_no=0, next_step_at=None, level=step.code)


def _gap_start(c: Clock, calendar: WorkCalendar) -> datetime | None:
    """Midnight of the day the calendar has no data for: the step waiting on it cannot fall earlier."""
    if c.calendar_gap is None:
        return None
    return datetime.combine(c.calendar_gap, time(0), tzinfo=calendar.tz)


def _settle(c: Clock, policy: SlaPolicy, calendar: WorkCalendar) -> Clock:
    """Fill in ``next_step_at`` once its anchor has fired, and recompute ``next_due_at``.

    If the step's time needs calendar data nobody has yet, the clock records the missing day in
    ``calendar_gap`` and wakes at its midnight to try again (the step cannot be due earlier, because
    every day before it is known and was not enough); steps before it are not held up.
    """
    if c.state == "stopped":
        return replace(c, next_due_at=None)
    if c.next_step_at is None and c.next_step < len(policy.ladder):
        step = policy.ladder[c.next_step]
        if _anchor_fired(c, step):
            try:
                c = replace(c, next_step_at=_step_time(c, step, policy, calendar), calendar_gap=None)
            except CalendarGapError as gap:
                c = replace(c, calendar_gap=gap.day)
    elif c.calendar_gap is not None:
        c = replace(c, calendar_gap=None)
    if c.state == "paused":
        return replace(c, next_due_at=None)
    candidates = [
        t
        for t in (
            None if c.warned else c.warn_at,
            None if c.breached else c.due_at,
            c.next_step_at,
            _gap_start(c, calendar),
        )
        if t is not None
    ]
    return replace(c, next_due_at=min(candidates) if candidates else None)
