from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import OrderOrigin, ReporterRef, TicketClosedV1, TicketReceivedV1
from gridline_contracts.notify import NotificationFailedV1, NotificationSentV1
from notify import domain

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def received(reporter: ReporterRef) -> TicketReceivedV1:
    return TicketReceivedV1(
        ticket_id=uuid.UUID(int=5),
        ticket_no="330106-20261123-000005",
        channel="citizen",
        category_code="200102",
        description="d",
        reported_at=NOW,
        received_at=NOW,
        reporter=reporter,
    )


def test_reporter_gets_a_receipt_only_when_reachable() -> None:
    eid = uuid.UUID(int=9)
    (req,) = domain.on_ticket_received(eid, received(ReporterRef(contact_token="tok")))
    assert req.template == "ticket_received" and req.params == {"order": "330106-20261123-000005"}
    assert req.recipient.contact_token == "tok" and req.dedupe_key == f"{eid}:reporter"
    assert domain.on_ticket_received(eid, received(ReporterRef())) == []
    assert domain.on_ticket_received(eid, received(ReporterRef(contact_token="t", anonymous=True))) == []


def test_unit_is_told_the_deadline_in_local_time() -> None:
    e = SlaClockStartedV1(
        ticket_id=uuid.UUID(int=5),
        ticket_no="N1",
        unit_code="330106-CG",
        policy_key="standard-5wd",
        started_at=NOW,
        warn_at=NOW,
        due_at=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
        time_limit="5 wd",
    )
    (req,) = domain.on_clock_started(uuid.UUID(int=1), e)
    assert req.recipient.kind == "unit" and req.recipient.ref == "330106-CG"
    assert req.params == {"order": "N1", "due": "11月30日17:30"}


POLICY = domain.RetryPolicy(
    max_attempts=5, per_provider_attempts=2, backoff_base_s=1, backoff_cap_s=60, settle_grace_s=120
)


def progress(
    attempts: int = 1, provider_index: int = 0, provider_attempts: int = 1, providers: int = 2
) -> domain.Progress:
    return domain.Progress(
        notification_id=uuid.UUID(int=1),
        ticket_id=None,
        template="t",
        recipient_kind="reporter",
        masked="138****0000",
        attempts=attempts,
        provider_index=provider_index,
        provider_attempts=provider_attempts,
        providers=providers,
    )


def attempted(outcome: str, **kw: Any) -> domain.Attempted:
    return domain.Attempted(outcome=outcome, provider="aliyun", code=kw.pop("code", "c"), message="m", **kw)  # type: ignore[arg-type]


def test_sent_is_final_with_its_event() -> None:
    nxt = domain.after_attempt(progress(), attempted("sent", provider_message_id="biz"), POLICY, NOW, 0.5)
    (sent,) = nxt.events
    assert nxt.status == "sent" and isinstance(sent, NotificationSentV1) and sent.provider_message_id == "biz"


def test_ambiguous_is_never_resent_but_settled_after_the_grace() -> None:
    nxt = domain.after_attempt(progress(), attempted("ambiguous"), POLICY, NOW, 0.5)
    assert (nxt.status, nxt.events, nxt.provider_index) == ("ambiguous", [], 0)
    assert nxt.next_attempt_at == NOW + timedelta(seconds=120)


def test_transient_failures_retry_with_jittered_backoff_then_fail_over() -> None:
    first = domain.after_attempt(progress(attempts=1, provider_attempts=1), attempted("retryable"), POLICY, NOW, 0.5)
    assert (first.status, first.provider_index, first.failed_over) == ("pending", 0, False)
    assert first.next_attempt_at == NOW + timedelta(seconds=0.5)  # 0.5 × min(60, 1·2^0)
    third = domain.after_attempt(progress(attempts=3, provider_attempts=1), attempted("retryable"), POLICY, NOW, 0.5)
    assert third.next_attempt_at == NOW + timedelta(seconds=2)  # 0.5 × 2^2
    over = domain.after_attempt(progress(attempts=2, provider_attempts=2), attempted("retryable"), POLICY, NOW, 0.5)
    assert (over.status, over.provider_index, over.provider_attempts, over.failed_over) == ("pending", 1, 0, True)
    assert over.next_attempt_at == NOW
    # On the last provider, transient failures keep retrying there until the overall budget is spent.
    last = domain.after_attempt(
        progress(attempts=4, provider_index=1, provider_attempts=2), attempted("retryable"), POLICY, NOW, 0.5
    )
    assert (last.status, last.provider_index) == ("pending", 1)
    spent = domain.after_attempt(
        progress(attempts=5, provider_index=1, provider_attempts=3), attempted("retryable"), POLICY, NOW, 0.5
    )
    (failed,) = spent.events
    assert spent.status == "failed" and isinstance(failed, NotificationFailedV1)


def test_provider_side_refusals_fail_over_at_once_message_errors_do_not() -> None:
    quota = domain.after_attempt(
        progress(), attempted("rejected", code="isv.AMOUNT_NOT_ENOUGH", failover=True), POLICY, NOW, 0.5
    )
    assert (quota.status, quota.provider_index) == ("pending", 1)
    alone = domain.after_attempt(
        progress(providers=1), attempted("rejected", code="isv.AMOUNT_NOT_ENOUGH", failover=True), POLICY, NOW, 0.5
    )
    assert alone.status == "failed"
    bad_number = domain.after_attempt(
        progress(), attempted("rejected", code="isv.MOBILE_NUMBER_ILLEGAL"), POLICY, NOW, 0.5
    )
    assert (bad_number.status, bad_number.provider_index) == ("failed", 0)


def test_minute_flow_control_is_a_deferral_on_the_same_provider() -> None:
    nxt = domain.after_attempt(progress(), attempted("retryable", retry_after_s=60.0), POLICY, NOW, 0.1)
    assert (nxt.status, nxt.provider_index) == ("pending", 0)
    assert nxt.next_attempt_at == NOW + timedelta(seconds=60)


def test_settle_from_the_providers_records() -> None:
    started = NOW - timedelta(seconds=10)
    # Too early to trust absence: ask again later.
    assert domain.settle(progress(), "not_found", "aliyun", "", None, started, POLICY, NOW, 0.5) is None
    assert domain.settle(progress(), "unknown", "aliyun", "", None, started, POLICY, NOW, 0.5) is None
    found = domain.settle(progress(), "sent", "aliyun", "DELIVERED", None, started, POLICY, NOW, 0.5)
    assert found is not None and found.status == "sent"
    old = NOW - timedelta(seconds=121)
    absent = domain.settle(
        progress(attempts=1, provider_attempts=1), "not_found", "aliyun", "", None, old, POLICY, NOW, 0.5
    )
    assert absent is not None and (absent.status, absent.provider_index) == ("pending", 0)
    absent2 = domain.settle(
        progress(attempts=2, provider_attempts=2), "not_found", "aliyun", "", None, old, POLICY, NOW, 0.5
    )
    assert absent2 is not None and (absent2.status, absent2.provider_index) == ("pending", 1)
    ancient = NOW - timedelta(days=2)
    gave_up = domain.settle(progress(), "unknown", "aliyun", "", None, ancient, POLICY, NOW, 0.5)
    assert gave_up is not None and gave_up.status == "failed" and gave_up.events[0].reason_code == "unsettled"  # type: ignore[union-attr]


SH = ZoneInfo("Asia/Shanghai")
NIGHT = domain.TenantLimits(quiet_start=time(22, 0), quiet_end=time(8, 0))


def test_quiet_hours_hold_non_urgent_citizen_messages_until_the_window_ends() -> None:
    late = datetime(2026, 11, 23, 23, 30, tzinfo=SH)
    assert domain.quiet_until(late, NIGHT, citizen=True, urgent=False) == datetime(2026, 11, 24, 8, 0, tzinfo=SH)
    early = datetime(2026, 11, 24, 6, 0, tzinfo=SH)
    assert domain.quiet_until(early, NIGHT, citizen=True, urgent=False) == datetime(2026, 11, 24, 8, 0, tzinfo=SH)
    assert domain.quiet_until(datetime(2026, 11, 24, 8, 0, tzinfo=SH), NIGHT, citizen=True, urgent=False) is None
    assert domain.quiet_until(late, NIGHT, citizen=True, urgent=True) is None
    assert domain.quiet_until(late, NIGHT, citizen=False, urgent=False) is None
    assert domain.quiet_until(late, domain.TenantLimits(quiet_start=None), citizen=True, urgent=False) is None
    lunch = domain.TenantLimits(quiet_start=time(12, 0), quiet_end=time(14, 0))  # a same-day window
    noon = datetime(2026, 11, 24, 12, 30, tzinfo=SH)
    assert domain.quiet_until(noon, lunch, citizen=True, urgent=False) == datetime(2026, 11, 24, 14, 0, tzinfo=SH)
    assert domain.quiet_until(late, lunch, citizen=True, urgent=False) is None
    # The answer is in the caller's zone (UTC in the service): 23:30 Beijing = 15:30 UTC.
    held = domain.quiet_until(late.astimezone(UTC), NIGHT, citizen=True, urgent=False)
    assert held == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_rate_deferral_waits_for_the_oldest_send_to_leave_the_window() -> None:
    limits = domain.TenantLimits(per_recipient_hour=2, per_recipient_day=3)
    t0 = NOW - timedelta(minutes=30)
    assert domain.rate_deferral(NOW, domain.RecentSends(1, t0, 1, t0), limits) is None
    assert domain.rate_deferral(NOW, domain.RecentSends(2, t0, 2, t0), limits) == t0 + timedelta(hours=1)
    d0 = NOW - timedelta(hours=20)
    assert domain.rate_deferral(NOW, domain.RecentSends(2, t0, 3, d0), limits) == d0 + timedelta(days=1)
    assert (
        domain.rate_deferral(NOW, domain.RecentSends(99, t0, 99, d0), domain.TenantLimits(per_recipient_day=None))
        is None
    )


def test_receipt_is_held_for_platform_orders_not_for_someone_using_the_app() -> None:
    eid = uuid.UUID(int=9)
    (app_req,) = domain.on_ticket_received(eid, received(ReporterRef(contact_token="tok")))
    assert not app_req.holdable
    hotline = received(ReporterRef(contact_token="tok")).model_copy(update={"channel": "hotline"})
    (req,) = domain.on_ticket_received(eid, hotline)
    assert req.holdable and not req.urgent
    urgent = hotline.model_copy(update={"priority": "urgent"})
    assert domain.on_ticket_received(eid, urgent)[0].urgent


def test_delivery_state_from_receipts() -> None:
    ok = domain.Receipt("aliyun", "k", None, "biz", True, "DELIVERED", NOW)
    bad = domain.Receipt("aliyun", "k2", None, "biz", False, "MK:0001", NOW)
    assert domain.delivery_after("sent", ok) == "delivered"
    assert domain.delivery_after("sent", bad) == "failed"
    assert domain.delivery_after("delivered", bad) == "delivered"  # out-of-order re-push
    assert domain.delivery_after("failed", ok) == "delivered"
    assert domain.delivery_after("expired", ok) == "delivered"


def test_sla_events_reach_the_roles_they_name() -> None:
    from gridline_contracts.escalation import EscalationRaisedV1, SlaBreachedV1, SlaWarnedV1

    due = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    common = {"ticket_id": uuid.UUID(int=5), "ticket_no": "N1", "unit_code": "U1", "policy_key": "p", "due_at": due}
    (warn,) = domain.on_sla_warned(
        uuid.UUID(int=1), SlaWarnedV1(**common, grid_code="G1", warn_at=NOW, detected_at=NOW)
    )
    assert (warn.template, warn.recipient.table_kind, warn.recipient.ref) == ("sla_warning", "unit", "U1")
    assert warn.params == {"order": "N1", "due": "11月30日17:30"} and warn.urgent
    breached = domain.on_sla_breached(uuid.UUID(int=2), SlaBreachedV1(**common, detected_at=NOW))
    assert [(r.recipient.kind, r.recipient.table_kind) for r in breached] == [("unit", "unit"), ("unit", "unit_head")]
    assert len({r.dedupe_key for r in breached}) == 2
    esc = EscalationRaisedV1(
        **common,
        grid_code="G1",
        step_index=2,
        step_code="S2",
        action="supervision_notice",
        recipients=["unit_head", "grid_head", "supervisor", "unit_head"],
        scheduled_at=NOW,
        raised_at=NOW,
    )
    reqs = domain.on_escalation(uuid.UUID(int=3), esc)
    assert [(r.recipient.kind, r.recipient.table_kind, r.recipient.ref) for r in reqs] == [
        ("unit", "unit_head", "U1"),
        ("grid_staff", "grid_head", "G1"),
        ("supervisor", "supervisor", "*"),
    ]
    assert reqs[0].params == {"order": "N1", "action": "督办"}
    no_grid = domain.on_escalation(uuid.UUID(int=4), esc.model_copy(update={"grid_code": None}))
    assert "grid_head" not in [r.recipient.table_kind for r in no_grid]


def test_templates_are_checked_against_provider_rules_when_saved() -> None:
    ok = domain.check_template(
        "ticket_assigned", "aliyun", "工单${order}已派给贵单位，请于${due}前办结。", ["order", "due"]
    )
    assert ok == []
    assert domain.check_template("ticket_assigned", "tencent", "工单{1}已派发，请于{2}前办结。", ["order", "due"]) == []

    def codes(*args: Any) -> list[str]:
        return [p.code for p in domain.check_template(*args)]

    assert codes("nope", "aliyun", "x", []) == ["unknown_template_name"]
    assert codes("ticket_assigned", "aliyun", "工单${order}${phone}", ["order", "phone"]) == ["unknown_variable"]
    assert codes("ticket_assigned", "aliyun", "工单${order}", ["order", "due"]) == ["variables_mismatch"]
    assert codes("ticket_assigned", "tencent", "工单{1}{3}", ["order", "due"]) == ["variables_mismatch"]
    assert codes("ticket_received", "aliyun", "【某市】工单${order}", ["order"]) == ["forbidden_content"]
    assert codes("ticket_received", "aliyun", "详见 https://x.cn ${order}", ["order"]) == ["forbidden_content"]
    assert codes("ticket_received", "aliyun", "工" * 500 + "${order}", ["order"]) == ["content_too_long"]


def _closed(**overrides: object) -> TicketClosedV1:
    fields: dict[str, object] = {
        "ticket_id": uuid.uuid4(),
        "ticket_no": "330106-20261122-000042",
        "from_status": "pending_callback",
        "to_status": "closed",
        "actor_role": "platform",
        "actor": "platform-1",
        "at": datetime(2026, 11, 22, 8, tzinfo=UTC),
        "channel": "citizen",
        "reporter": ReporterRef(contact_token="sealed-token"),
    }
    return TicketClosedV1.model_validate(fields | overrides)


def test_a_closed_ticket_tells_its_reporter_once_per_event() -> None:
    event_id = uuid.uuid4()
    (req,) = domain.on_ticket_closed(event_id, _closed())
    assert (req.template, req.params, req.recipient.kind) == (
        "ticket_result",
        {"order": "330106-20261122-000042"},
        "reporter",
    )
    assert req.dedupe_key == f"{event_id}:reporter" and req.holdable and not req.urgent


@pytest.mark.parametrize(
    "overrides",
    [
        {"channel": "hotline"},
        {"origin": OrderOrigin(integration="h1", external_id="E1")},
        {"reporter": ReporterRef(anonymous=True, contact_token="sealed-token")},
        {"reporter": ReporterRef()},
        {"reporter": None},
    ],
    ids=["hotline", "pushed-by-a-platform", "anonymous", "no-contact", "older-event"],
)
def test_no_result_sms_when_the_platform_tells_or_nobody_can_be_reached(overrides: dict[str, object]) -> None:
    assert domain.on_ticket_closed(uuid.uuid4(), _closed(**overrides)) == []
