"""The lifecycle of domain §1.3, exhaustively: every command × every state × every role."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridline_contracts.intake import ReporterRef, Transition
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)
from intake import domain
from intake.domain import Actor, ActorRefused, Decision, Rules, Status, Ticket, TransitionRefused
from intake.workdays import WorkingDays

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = Rules()
UNIT = "330106-CGJ"
ROLES = ("citizen", "hotline", "platform", "dispatcher", "unit", "grid_staff", "supervisor", "system")


def actor(role: str, unit: str | None = UNIT) -> Actor:
    return Actor(role=role, id=f"staff-{role}", unit_code=unit if role in ("unit", "grid_staff") else None)  # type: ignore[arg-type]


def ticket_in(status: Status, **kw: object) -> Ticket:
    base = Ticket(
        id=uuid.UUID(int=42),
        tenant="330106",
        ticket_no="330106-20261123-000042",
        status=status,
        channel="citizen",
        category_code="200102",
        description="背街小巷垃圾堆积",
        demand_type="complaint",
        priority="normal",
        location=None,
        address="文三路 1 号",
        area_code=None,
        reported_at=NOW - timedelta(hours=3),
        received_at=NOW - timedelta(hours=3),
        reporter=ReporterRef(contact_token="tok", masked_phone="138****0000"),
        unit_code=UNIT,
        dispatched_at=NOW - timedelta(hours=2),
        due_at=NOW + timedelta(days=3),
        pending_extension_days=3 if status is Status.EXTENSION_REQUESTED else None,
        last_satisfaction="unsatisfied" if status is Status.PENDING_CALLBACK else None,
        closed_at=NOW - timedelta(days=8) if status in (Status.CLOSED, Status.DIRECT_CLOSED, Status.REJECTED) else None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# The HTTP-facing commands, with valid arguments: only guards can refuse them.
COMMANDS: dict[str, Callable[[Ticket, Actor, datetime], Decision]] = {
    "sign": lambda t, a, now: domain.sign(t, a, now),
    "request_return": lambda t, a, now: domain.request_return(t, a, "not_our_duty", "三定方案无此职责", now, RULES),
    "request_extension": lambda t, a, now: domain.request_extension(t, a, 3, "需协调多部门现场处置", now, RULES),
    "reply": lambda t, a, now: domain.reply(t, a, "已清运垃圾并设置提示牌", 2, now),
    "review_extension": lambda t, a, now: domain.review_extension(t, a, True, None, now),
    "review_reply": lambda t, a, now: domain.review_reply(t, a, True, "", now),
    "record_callback": lambda t, a, now: domain.record_callback(t, a, "satisfied", True, now),
    "redo": lambda t, a, now: domain.redo(t, a, "来电人反映未清理干净", now, RULES),
    "close": lambda t, a, now: domain.close(t, a, "多次联系不上", now),
    "archive": lambda t, a, now: domain.archive(t, a, now, RULES),
    "reopen": lambda t, a, now: domain.reopen(t, a, "问题复发", now, RULES),
    "reject": lambda t, a, now: domain.reject(t, a, "other_jurisdiction", "请向西湖区反映", now),
    "direct_close": lambda t, a, now: domain.direct_close(t, a, "已告知办理流程", now),
}
TARGET: dict[str, Status] = {
    "sign": Status.ACCEPTED,
    "request_return": Status.RETURN_REQUESTED,
    "request_extension": Status.EXTENSION_REQUESTED,
    "reply": Status.REPLIED,
    "review_extension": Status.ACCEPTED,
    "review_reply": Status.PENDING_CALLBACK,
    "record_callback": Status.CLOSED,
    "redo": Status.ACCEPTED,
    "close": Status.CLOSED,
    "archive": Status.ARCHIVED,
    "reopen": Status.ACCEPTED,
    "reject": Status.REJECTED,
    "direct_close": Status.DIRECT_CLOSED,
}


def allowed_role(command: str) -> str:
    return sorted(domain.TRANSITIONS[command][1])[0]


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_in_every_state(command: str, status: Status) -> None:
    sources, _ = domain.TRANSITIONS[command]
    t = ticket_in(status)
    a = actor(allowed_role(command))
    if status in sources:
        d = COMMANDS[command](t, a, NOW)
        assert d.ticket.status is TARGET[command]
        assert d.ticket.version > t.version
        assert d.events and len(d.events) == len(d.history)
        first = d.events[0]
        assert isinstance(first, Transition) and first.from_status == status.value
        assert first.actor == a.id and first.at == NOW
        last = d.events[-1]
        assert isinstance(last, Transition) and last.to_status == TARGET[command].value
    else:
        with pytest.raises(TransitionRefused) as info:
            COMMANDS[command](t, a, NOW)
        assert info.value.code == "illegal_transition" and info.value.status == 409
        assert info.value.details["status"] == status.value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_every_other_role(command: str, role: str) -> None:
    sources, roles = domain.TRANSITIONS[command]
    t = ticket_in(sorted(sources)[0])
    if role in roles:
        COMMANDS[command](t, actor(role), NOW)
        return
    with pytest.raises(ActorRefused) as info:
        COMMANDS[command](t, actor(role), NOW)
    assert info.value.code == "role_not_allowed" and info.value.status == 403


@pytest.mark.parametrize("command", sorted(domain.UNIT_OWNED))
def test_a_unit_never_acts_on_another_units_ticket(command: str) -> None:
    t = ticket_in(sorted(domain.TRANSITIONS[command][0])[0])
    for other in (actor("unit", "330106-SCJGJ"), actor("grid_staff", None)):
        with pytest.raises(ActorRefused) as info:
            COMMANDS[command](t, other, NOW)
        assert info.value.code == "not_your_ticket"


def test_role_is_checked_before_state() -> None:
    with pytest.raises(ActorRefused):
        domain.sign(ticket_in(Status.CLOSED), actor("platform"), NOW)


# ---- time windows and limits --------------------------------------------------------------


CST = ZoneInfo("Asia/Shanghai")


def cst(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CST)


def ask_return(t: Ticket, now: datetime, rules: Rules = RULES) -> Decision:
    return domain.request_return(t, actor("unit"), "not_our_duty", "三定方案无此职责", now, rules)


@pytest.mark.parametrize(
    ("dispatched", "still_open", "closed_at"),
    [
        # Friday afternoon: Mon and Tue are the two working days (calendar hours would close on Sunday).
        (cst(2026, 11, 20, 16), cst(2026, 11, 24, 23, 59), cst(2026, 11, 25)),
        # Eve of National Day: Oct 1–7 are holidays; Thu 8 and Fri 9 count.
        (cst(2026, 9, 30, 10), cst(2026, 10, 9, 18), cst(2026, 10, 10)),
        # Saturday Oct 10 is a 补班 working day: day 2 of a dispatch on Thu Oct 8.
        (cst(2026, 10, 8, 9), cst(2026, 10, 10, 12), cst(2026, 10, 11)),
    ],
)
def test_return_window_is_two_working_days(dispatched: datetime, still_open: datetime, closed_at: datetime) -> None:
    t = ticket_in(Status.DISPATCHED, dispatched_at=dispatched)
    assert ask_return(t, still_open).ticket.status is Status.RETURN_REQUESTED
    with pytest.raises(TransitionRefused) as info:
        ask_return(t, closed_at + timedelta(seconds=1))
    assert info.value.code == "return_window_closed"
    assert datetime.fromisoformat(info.value.details["window_closed_at"]) == closed_at


def test_return_window_follows_the_tenants_overrides() -> None:
    t = ticket_in(Status.DISPATCHED, dispatched_at=cst(2026, 11, 20, 16))
    local_holiday = Rules(calendars={"330106": WorkingDays(overrides={date(2026, 11, 23): False})})
    assert ask_return(t, cst(2026, 11, 25, 10), local_holiday).ticket.status is Status.RETURN_REQUESTED
    with pytest.raises(TransitionRefused, match="return_window_closed"):
        ask_return(t, cst(2026, 11, 25, 10))  # the same moment without the override: closed
    other_tenant = Rules(calendars={"330108": WorkingDays(overrides={date(2026, 11, 23): False})})
    with pytest.raises(TransitionRefused, match="return_window_closed"):
        ask_return(t, cst(2026, 11, 25, 10), other_tenant)


def test_a_year_without_calendar_data_is_a_clear_error_not_a_guess() -> None:
    t = ticket_in(Status.DISPATCHED, dispatched_at=cst(2026, 12, 30, 10))
    # Still open on Dec 31: nothing about 2027 needs to be known yet.
    assert ask_return(t, cst(2026, 12, 31, 10)).ticket.status is Status.RETURN_REQUESTED
    with pytest.raises(TransitionRefused) as info:
        ask_return(t, cst(2027, 1, 5, 10))
    assert info.value.code == "calendar_gap" and info.value.status == 503
    assert info.value.details == {"day": "2027-01-01"} and "2027" in info.value.message
    # Once the year's notice is entered (New Year's Day off, the rest Mon–Fri), the answer is exact.
    notice = Rules(calendars={"330106": WorkingDays(overrides={date(2027, 1, 1): False}, override_years={2027})})
    with pytest.raises(TransitionRefused) as closed:
        ask_return(t, cst(2027, 1, 5, 10), notice)
    assert closed.value.code == "return_window_closed"
    assert datetime.fromisoformat(closed.value.details["window_closed_at"]) == cst(2027, 1, 5)


def test_extension_must_come_one_working_day_before_the_deadline() -> None:
    u = actor("unit")
    t = ticket_in(Status.ACCEPTED, due_at=cst(2026, 11, 27, 17, 30))  # a Friday
    ok = domain.request_extension(t, u, 3, "需协调多部门现场处置", cst(2026, 11, 26, 23, 0), RULES)
    assert ok.ticket.status is Status.EXTENSION_REQUESTED
    with pytest.raises(TransitionRefused) as info:
        domain.request_extension(t, u, 3, "需协调多部门现场处置", cst(2026, 11, 27, 9), RULES)
    assert info.value.code == "extension_window_closed"
    assert datetime.fromisoformat(info.value.details["window_closed_at"]) == cst(2026, 11, 27)
    # Over National Day: a deadline on Thu Oct 8 must be extended by the end of Wed Sep 30.
    holiday = ticket_in(Status.ACCEPTED, due_at=cst(2026, 10, 8, 17, 30))
    with pytest.raises(TransitionRefused, match="extension_window_closed"):
        domain.request_extension(holiday, u, 3, "需协调多部门现场处置", cst(2026, 10, 3, 10), RULES)
    # Lead 0: up to the deadline itself.
    up_to_deadline = Rules(extension_lead_working_days=0)
    assert domain.request_extension(t, u, 3, "需协调多部门现场处置", cst(2026, 11, 27, 9), up_to_deadline).ticket
    # A deadline in a year nobody has data for, with a lead to count: 503 calendar_gap.
    gap = ticket_in(Status.ACCEPTED, due_at=cst(2027, 1, 6, 17, 30))
    with pytest.raises(TransitionRefused) as info:
        domain.request_extension(gap, u, 3, "需协调多部门现场处置", cst(2026, 12, 28, 10), RULES)
    assert info.value.code == "calendar_gap"


@pytest.mark.parametrize(
    ("reason", "basis", "code"),
    [("because", "三定方案无此职责", "unknown_reason_code"), ("not_our_duty", " ", "return_basis_required")],
)
def test_return_needs_known_reason_and_basis(reason: str, basis: str, code: str) -> None:
    with pytest.raises(TransitionRefused) as info:
        domain.request_return(ticket_in(Status.DISPATCHED), actor("unit"), reason, basis, NOW, RULES)
    assert info.value.code == code


def test_rejected_return_forces_handling_and_no_second_return() -> None:
    t = domain.request_return(
        ticket_in(Status.DISPATCHED), actor("unit"), "not_our_duty", "三定方案无此职责", NOW, RULES
    ).ticket
    review = DispatchReturnReviewedV1(
        ticket_id=t.id, unit_code=UNIT, approved=False, reviewer="dispatcher-7", reason="属本单位职责", decided_at=NOW
    )
    d = domain.apply_return_review(t, review, NOW)
    assert d.ticket.status is Status.ACCEPTED and d.ticket.return_refused
    (e,) = d.events
    assert e.TYPE == "ticket.return_resolved" and e.approved is False  # type: ignore[attr-defined]
    with pytest.raises(TransitionRefused) as info:
        domain.request_return(d.ticket, actor("unit"), "not_our_duty", "三定方案无此职责", NOW, RULES)
    assert info.value.code == "return_already_refused"


def test_approved_return_waits_for_reassignment_then_redispatches() -> None:
    t = domain.request_return(
        ticket_in(Status.ACCEPTED), actor("unit"), "wrong_territory", "不在本街道辖区", NOW, RULES
    ).ticket
    review = DispatchReturnReviewedV1(
        ticket_id=t.id, unit_code=UNIT, approved=True, reviewer="auto:territory", reason="属地不符", decided_at=NOW
    )
    d = domain.apply_return_review(t, review, NOW)
    assert d.ticket.status is Status.RECEIVED and d.ticket.unit_code is None
    assert d.events[0].approved is True  # type: ignore[attr-defined]
    new, _, _ = domain.apply_dispatch(d.ticket, assigned(t.id, "330106-XHJD"), NOW)
    assert new.status is Status.DISPATCHED and new.unit_code == "330106-XHJD" and not new.return_refused
    # The old unit can no longer act on it.
    with pytest.raises(ActorRefused):
        domain.sign(new, actor("unit"), NOW)
    assert domain.sign(new, actor("unit", "330106-XHJD"), NOW).ticket.status is Status.ACCEPTED


def test_reassignment_may_arrive_while_return_is_still_pending() -> None:
    t = domain.request_return(
        ticket_in(Status.DISPATCHED), actor("unit"), "not_our_duty", "三定方案无此职责", NOW, RULES
    ).ticket
    new, _, _ = domain.apply_dispatch(t, assigned(t.id, "330106-XHJD"), NOW)
    assert new.status is Status.DISPATCHED and new.unit_code == "330106-XHJD"


def test_stale_return_review_for_another_unit_is_refused() -> None:
    t = domain.request_return(
        ticket_in(Status.DISPATCHED), actor("unit"), "not_our_duty", "三定方案无此职责", NOW, RULES
    ).ticket
    review = DispatchReturnReviewedV1(
        ticket_id=t.id, unit_code="330106-OTHER", approved=True, reviewer="d", reason="x", decided_at=NOW
    )
    with pytest.raises(TransitionRefused) as info:
        domain.apply_return_review(t, review, NOW)
    assert info.value.code == "stale_return_review"


def test_extension_guards() -> None:
    t = ticket_in(Status.ACCEPTED)
    u = actor("unit")
    with pytest.raises(TransitionRefused, match="deadline_passed"):
        domain.request_extension(t, u, 3, "需协调多部门", t.due_at + timedelta(minutes=1), RULES)  # type: ignore[operator]
    with pytest.raises(TransitionRefused, match="extension_too_long"):
        domain.request_extension(t, u, RULES.max_extension_days + 1, "需协调多部门", NOW, RULES)
    with pytest.raises(TransitionRefused, match="extension_limit_reached"):
        domain.request_extension(replace(t, extension_count=RULES.max_extensions), u, 3, "需协调多部门", NOW, RULES)
    d = domain.request_extension(t, u, 5, "需协调多部门", NOW, RULES)
    with pytest.raises(TransitionRefused, match="extension_days_invalid"):
        domain.review_extension(d.ticket, actor("platform"), True, 6, NOW)
    r = domain.review_extension(d.ticket, actor("platform"), True, 4, NOW)
    assert r.ticket.status is Status.ACCEPTED and r.ticket.extension_count == 1
    assert r.events[0].working_days == 4  # type: ignore[attr-defined]
    refused = domain.review_extension(d.ticket, actor("platform"), False, None, NOW)
    assert refused.ticket.extension_count == 0 and refused.events[0].working_days == 0  # type: ignore[attr-defined]


def test_reply_rejected_goes_back_to_unit_and_needs_a_reason() -> None:
    t = ticket_in(Status.REPLIED)
    with pytest.raises(TransitionRefused, match="review_comment_required"):
        domain.review_reply(t, actor("platform"), False, "", NOW)
    assert domain.review_reply(t, actor("platform"), False, "未附现场照片", NOW).ticket.status is Status.ACCEPTED


def test_callbacks() -> None:
    t = ticket_in(Status.PENDING_CALLBACK, last_satisfaction=None)
    p = actor("platform")
    with pytest.raises(TransitionRefused, match="callback_missing"):
        domain.close(t, p, "联系不上", NOW)
    with pytest.raises(TransitionRefused, match="callback_not_unsatisfied"):
        domain.redo(t, p, "x不满意", NOW, RULES)
    ok = domain.record_callback(t, p, "basically_satisfied", True, NOW)
    assert [e.TYPE for e in ok.events] == ["ticket.callback_recorded", "ticket.closed"]
    assert ok.ticket.status is Status.CLOSED and ok.ticket.closed_at == NOW
    bad = domain.record_callback(t, p, "unsatisfied", False, NOW)
    assert bad.ticket.status is Status.PENDING_CALLBACK and bad.ticket.last_satisfaction == "unsatisfied"
    again = domain.redo(bad.ticket, p, "来电人称问题仍在", NOW, RULES)
    assert again.ticket.status is Status.ACCEPTED and again.ticket.redo_count == 1
    with pytest.raises(TransitionRefused, match="redo_limit_reached"):
        domain.redo(replace(bad.ticket, redo_count=RULES.max_redo), p, "仍不满意", NOW, RULES)
    gone = domain.record_callback(t, p, "unreachable", None, NOW)
    assert domain.close(gone.ticket, p, "三次联系不上", NOW).ticket.status is Status.CLOSED


def test_archive_and_reopen_windows() -> None:
    p = actor("platform")
    fresh = ticket_in(Status.CLOSED, closed_at=NOW - timedelta(days=1))
    with pytest.raises(TransitionRefused, match="evaluation_window_open"):
        domain.archive(fresh, p, NOW, RULES)
    assert domain.reopen(fresh, p, "问题复发", NOW, RULES).ticket.status is Status.ACCEPTED
    old = ticket_in(Status.CLOSED, closed_at=NOW - RULES.reopen_window - timedelta(days=1))
    with pytest.raises(TransitionRefused, match="reopen_window_closed"):
        domain.reopen(old, p, "问题复发", NOW, RULES)
    assert domain.archive(old, actor("system"), NOW, RULES).ticket.status is Status.ARCHIVED
    # Archived is final: every command refuses.
    archived = ticket_in(Status.ARCHIVED)
    for name, cmd in COMMANDS.items():
        with pytest.raises(TransitionRefused):
            cmd(archived, actor(allowed_role(name)), NOW)


# ---- routing-driven transitions -------------------------------------------------------------


def assigned(ticket_id: uuid.UUID, unit: str = UNIT) -> DispatchAssignedV1:
    return DispatchAssignedV1(
        ticket_id=ticket_id,
        unit_code=unit,
        unit_name="西湖街道",
        rule_id="R9",
        directory_version=4,
        sla_policy_key="standard-5wd",
        match_method="point",
        confidence=1.0,
        decided_at=NOW,
    )


@pytest.mark.parametrize("status", list(Status))
def test_merge_and_unmerge_in_every_state(status: Status) -> None:
    parent = uuid.UUID(int=7)
    found = DispatchDuplicateFoundV1(
        ticket_id=uuid.UUID(int=42), parent_ticket_id=parent, rule="same-place-24h", decided_at=NOW
    )
    t = ticket_in(status)
    if status in (Status.RECEIVED, Status.AWAITING_MANUAL):
        d = domain.apply_duplicate(t, found, "330106-20261123-000007", NOW)
        assert d.ticket.status is Status.MERGED and d.ticket.merge_parent_id == parent
        assert d.events[0].parent_ticket_no == "330106-20261123-000007"  # type: ignore[attr-defined]
    else:
        with pytest.raises(TransitionRefused):
            domain.apply_duplicate(t, found, "n", NOW)
    split = DispatchUnmergedV1(ticket_id=t.id, former_parent_ticket_id=parent, dispatcher="d-1", decided_at=NOW)
    if status is Status.MERGED:
        d = domain.apply_unmerge(t, split, NOW)
        assert d.ticket.status is Status.RECEIVED and d.ticket.merge_parent_id is None
    else:
        with pytest.raises(TransitionRefused):
            domain.apply_unmerge(t, split, NOW)


@pytest.mark.parametrize("status", list(Status))
def test_dispatch_in_every_state(status: Status) -> None:
    t = ticket_in(status)
    other = "330106-XHJD"
    if status in domain.TRANSITIONS["dispatch"][0]:
        assert domain.apply_dispatch(t, assigned(t.id, other), NOW)[0].status is Status.DISPATCHED
    else:
        with pytest.raises(TransitionRefused, match="not_dispatchable"):
            domain.apply_dispatch(t, assigned(t.id, other), NOW)


def test_reassignment_before_signing_moves_the_ticket_and_restarts_the_dispatch() -> None:
    t = ticket_in(Status.DISPATCHED, sla_colour="yellow", dispatched_at=NOW - timedelta(hours=30))
    later = NOW + timedelta(minutes=5)
    new, entry, events = domain.apply_dispatch(t, assigned(t.id, "330106-XHJD"), later)
    assert (new.status, new.unit_code, new.dispatched_at, new.sla_colour) == (
        Status.DISPATCHED,
        "330106-XHJD",
        later,
        "green",
    )
    assert new.version == t.version + 1
    assert (entry.action, entry.from_status, entry.to_status) == ("dispatch", Status.DISPATCHED, Status.DISPATCHED)
    assert "改派至" in entry.note and f"原承办单位 {UNIT} 未签收" in entry.note
    [event] = events
    assert event.unit_code == "330106-XHJD" and event.dispatched_at == later
    assert event.previous_unit_code == UNIT
    # The first unit lost it: it can neither sign nor return it; the new unit signs it.
    with pytest.raises(ActorRefused, match="not_your_ticket"):
        domain.sign(new, actor("unit"), later)
    with pytest.raises(ActorRefused, match="not_your_ticket"):
        domain.request_return(new, actor("unit"), "not_our_duty", "三定方案无此职责", later, RULES)
    assert domain.sign(new, actor("unit", "330106-XHJD"), later).ticket.status is Status.ACCEPTED


def test_a_repeated_dispatch_to_the_same_unit_changes_nothing() -> None:
    t = ticket_in(Status.DISPATCHED)
    with pytest.raises(TransitionRefused, match="already_dispatched"):
        domain.apply_dispatch(t, assigned(t.id, UNIT), NOW)


def test_a_signed_ticket_is_not_reassigned_by_routing() -> None:
    t = domain.sign(ticket_in(Status.DISPATCHED), actor("unit"), NOW).ticket
    with pytest.raises(TransitionRefused, match="not_dispatchable"):
        domain.apply_dispatch(t, assigned(t.id, "330106-XHJD"), NOW)


def test_a_full_life_is_one_event_and_one_history_line_per_step() -> None:
    t = ticket_in(Status.DISPATCHED)
    u, p = actor("unit"), actor("platform")
    steps: list[Decision] = []
    for f in (
        lambda t: domain.sign(t, u, NOW),
        lambda t: domain.request_extension(t, u, 2, "需协调多部门", NOW, RULES),
        lambda t: domain.review_extension(t, p, True, None, NOW),
        lambda t: domain.reply(t, u, "已清运并设置提示牌", 1, NOW),
        lambda t: domain.review_reply(t, p, True, "", NOW),
        lambda t: domain.record_callback(t, p, "satisfied", True, NOW),
        lambda t: domain.archive(t, p, NOW + RULES.evaluation_window, RULES),
    ):
        d = f(t)
        steps.append(d)
        t = d.ticket
    types = [e.TYPE for d in steps for e in d.events]
    assert types == [
        "ticket.signed",
        "ticket.extension_requested",
        "ticket.extension_reviewed",
        "ticket.replied",
        "ticket.reply_reviewed",
        "ticket.callback_recorded",
        "ticket.closed",
        "ticket.archived",
    ]
    chain = [(h.from_status, h.to_status) for d in steps for h in d.history]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chain))
    assert t.status is Status.ARCHIVED


def test_hotline_update_records_changed_fields_and_refuses_after_close() -> None:
    t = ticket_in(Status.ACCEPTED)
    h = Actor("hotline", "integration:hz12345")
    assert domain.update_from_source(t, {"description": t.description}, h, NOW).ticket is t
    d = domain.update_from_source(t, {"description": "垃圾堆积并有异味", "priority": "urgent"}, h, NOW)
    assert d.ticket.description == "垃圾堆积并有异味" and d.ticket.status is Status.ACCEPTED
    assert d.events[0].changed_fields == ["description", "priority"]  # type: ignore[attr-defined]
    with pytest.raises(TransitionRefused, match="ticket_finished"):
        domain.update_from_source(ticket_in(Status.CLOSED), {"priority": "urgent"}, h, NOW)


def test_clock_facts_do_not_move_status() -> None:
    t = ticket_in(Status.ACCEPTED)
    red = domain.apply_clock(t, colour="red")
    assert red.status is Status.ACCEPTED and red.sla_colour == "red"
    assert domain.apply_clock(t) is t


def test_the_citizen_result_travels_on_reply_review_and_close() -> None:
    """What notify needs for the reply/result SMS (or the push back to a 12345 platform)."""
    t = ticket_in(Status.ACCEPTED, channel="hotline", source="hz12345", external_id="HZ-1")
    t = domain.reply(t, actor("unit"), "已清运垃圾并设置提示牌", 0, NOW).ticket
    assert t.last_reply == "已清运垃圾并设置提示牌"
    rejected = domain.review_reply(t, actor("platform"), False, "未附照片", NOW).events[0]
    assert rejected.reply is None and rejected.reporter is None  # type: ignore[attr-defined]
    approved = domain.review_reply(t, actor("platform"), True, "", NOW)
    e = approved.events[0]
    assert e.reply == "已清运垃圾并设置提示牌" and e.channel == "hotline"  # type: ignore[attr-defined]
    assert e.reporter.contact_token == "tok"  # type: ignore[attr-defined]
    assert (e.origin.integration, e.origin.external_id) == ("hz12345", "HZ-1")  # type: ignore[attr-defined]
    closed = domain.record_callback(approved.ticket, actor("platform"), "satisfied", True, NOW).events[-1]
    assert closed.reply == "已清运垃圾并设置提示牌" and closed.reporter.contact_token == "tok"  # type: ignore[attr-defined]


def test_a_whistleblowers_result_carries_only_the_sealed_token() -> None:
    t = ticket_in(Status.PENDING_CALLBACK, demand_type="report", last_reply="已查处")
    e = domain.close(t, actor("platform"), "联系不上", NOW).events[0]
    assert e.reporter.contact_token == "tok" and e.reporter.masked_phone is None  # type: ignore[attr-defined]
    assert e.reply == "已查处" and e.origin is None  # type: ignore[attr-defined]


def test_direct_close_tells_the_citizen_the_answer() -> None:
    e = domain.direct_close(ticket_in(Status.RECEIVED), actor("hotline"), "已告知办理流程", NOW).events[0]
    assert e.reply == "已告知办理流程" and e.channel == "citizen"  # type: ignore[attr-defined]
