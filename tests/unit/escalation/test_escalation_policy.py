"""SLA policies: limits, warning rules, platform deadlines, priority overrides, tenant tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from escalation.policy import (
    DEFAULT_POLICIES,
    Duration,
    EscalationStep,
    PolicyError,
    SlaPolicy,
    UnknownPolicyError,
    lookup_policy,
    plan_deadlines,
    resolve_policy,
)
from gridline_calendar import CalendarGapError, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=SH)


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


class TestDefaults:
    def test_the_built_in_policies_are_there_and_justified(self) -> None:
        assert set(DEFAULT_POLICIES) == {
            "sign-1wd",
            "sign-2wh",
            "sign-30m",
            "standard-5wd",
            "urgent-1wd",
            "critical-2h",
            "consult-3wd",
            "complaint-5wd",
            "campaign-rectify-3d",
        }
        for key, policy in DEFAULT_POLICIES.items():
            assert policy.key == key
            assert policy.sign_policy_key is None or DEFAULT_POLICIES[policy.sign_policy_key].sign_policy_key is None
            assert "S" in policy.description  # cites the domain reference's sources
            assert policy.ladder, key

    def test_standard_5wd_warns_one_working_day_before(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], MONDAY_10, CAL)
        assert plan.due_at == at(2026, 11, 30, 17, 30)
        assert plan.warn_at == at(2026, 11, 27, 17, 30)
        assert plan.due_source == "policy"
        assert not plan.provisional

    def test_consult_3wd(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["consult-3wd"], MONDAY_10, CAL)
        assert plan.due_at == at(2026, 11, 26, 17, 30)
        assert plan.warn_at == at(2026, 11, 25, 17, 30)

    def test_urgent_1wd_warns_at_half_the_working_time(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["urgent-1wd"], MONDAY_10, CAL)
        assert plan.due_at == at(2026, 11, 24, 17, 30)
        # Monday 10:00 → Tuesday 17:30 is 6 + 7 = 13 working hours; half is 6.5 h → Tuesday 09:30.
        assert plan.warn_at == at(2026, 11, 24, 9, 30)

    def test_critical_2h_runs_on_natural_hours_through_a_holiday(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["critical-2h"], at(2026, 10, 3, 23), CAL)
        assert plan.due_at == at(2026, 10, 4, 1)
        assert plan.warn_at == at(2026, 10, 4, 0, 36)  # 80 % of 2 h

    def test_campaign_rectify_3d_counts_the_weekend(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["campaign-rectify-3d"], at(2026, 11, 20, 15), CAL)
        assert plan.due_at == at(2026, 11, 23, 15)
        assert plan.warn_at == at(2026, 11, 22, 15)

    def test_describe(self) -> None:
        assert DEFAULT_POLICIES["standard-5wd"].describe() == "5 working days"
        assert DEFAULT_POLICIES["urgent-1wd"].describe() == "1 working day"
        assert DEFAULT_POLICIES["critical-2h"].describe() == "2 hours"
        assert Duration.working_hours(4.5).describe() == "4.5 working hours"


class TestPlatformDeadline:
    def test_an_earlier_platform_deadline_wins(self) -> None:
        platform = at(2026, 11, 26, 12)
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], MONDAY_10, CAL, platform)
        assert plan.due_at == platform
        assert plan.due_source == "platform"
        assert plan.warn_at == at(2026, 11, 25, 12)  # still 1 working day before

    def test_a_later_platform_deadline_does_not(self) -> None:
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], MONDAY_10, CAL, at(2026, 12, 4, 17, 30))
        assert plan.due_at == at(2026, 11, 30, 17, 30)
        assert plan.due_source == "policy"

    def test_the_warning_stays_inside_a_short_platform_window(self) -> None:
        platform = at(2026, 11, 23, 11)
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], MONDAY_10, CAL, platform)
        assert plan.warn_at == MONDAY_10  # warn at once: less than the warning margin is left
        fraction = plan_deadlines(DEFAULT_POLICIES["urgent-1wd"], MONDAY_10, CAL, platform)
        assert fraction.warn_at == at(2026, 11, 23, 10, 30)

    def test_platform_deadline_in_another_zone(self) -> None:
        platform = datetime(2026, 11, 24, 1, tzinfo=ZoneInfo("UTC"))  # 09:00 in Shanghai
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], MONDAY_10, CAL, platform)
        assert plan.due_at == at(2026, 11, 24, 9)
        assert plan.due_at.tzinfo == SH


class TestResolution:
    def test_critical_priority_shortens_to_critical_2h(self) -> None:
        assert resolve_policy("standard-5wd", "critical", MONDAY_10, CAL).key == "critical-2h"

    def test_urgent_priority_shortens_to_urgent_1wd(self) -> None:
        assert resolve_policy("complaint-5wd", "urgent", MONDAY_10, CAL).key == "urgent-1wd"

    def test_normal_priority_keeps_the_dispatched_policy(self) -> None:
        assert resolve_policy("consult-3wd", "normal", MONDAY_10, CAL).key == "consult-3wd"

    def test_priority_never_lengthens(self) -> None:
        assert resolve_policy("critical-2h", "urgent", MONDAY_10, CAL).key == "critical-2h"

    def test_tenant_table_wins_over_defaults(self) -> None:
        mine = replace(DEFAULT_POLICIES["standard-5wd"], limit=Duration.working_days(7), version=2)
        tenant = {"standard-5wd": mine}
        assert lookup_policy("standard-5wd", tenant) is mine
        assert lookup_policy("consult-3wd", tenant) is DEFAULT_POLICIES["consult-3wd"]
        assert resolve_policy("standard-5wd", "normal", MONDAY_10, CAL, tenant) is mine

    def test_tenant_priority_overrides(self) -> None:
        tenant = {
            "critical-1h": replace(DEFAULT_POLICIES["critical-2h"], key="critical-1h", limit=Duration.natural_hours(1))
        }
        policy = resolve_policy("standard-5wd", "critical", MONDAY_10, CAL, tenant, {"critical": "critical-1h"})
        assert policy.key == "critical-1h"

    def test_unknown_key(self) -> None:
        with pytest.raises(UnknownPolicyError) as err:
            lookup_policy("no-such-policy")
        assert err.value.code == "unknown_policy"

    def test_calendar_gap_surfaces(self) -> None:
        with pytest.raises(CalendarGapError):
            plan_deadlines(DEFAULT_POLICIES["standard-5wd"], at(2026, 12, 28, 10), CAL)

    def test_fallback_calendar_marks_the_plan_provisional(self) -> None:
        cal = WorkCalendar(fallback="weekends_only")
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], at(2026, 12, 28, 10), cal)
        assert plan.due_at == at(2027, 1, 4, 17, 30)
        assert plan.provisional

    def test_override_table_for_2027_is_not_provisional(self) -> None:
        cal = WorkCalendar(overrides={date(2027, 1, 1): False}, override_years={2027})
        plan = plan_deadlines(DEFAULT_POLICIES["standard-5wd"], at(2026, 12, 28, 10), cal)
        assert plan.due_at == at(2027, 1, 5, 17, 30)
        assert not plan.provisional

    def test_same_day_counting_policy(self) -> None:
        policy = replace(DEFAULT_POLICIES["consult-3wd"], count_from="same_day")
        assert policy.due_after(MONDAY_10, CAL) == at(2026, 11, 25, 17, 30)


class TestValidation:
    @pytest.mark.parametrize("policy", list(DEFAULT_POLICIES.values()), ids=lambda p: p.key)
    def test_round_trip_through_dict(self, policy: SlaPolicy) -> None:
        assert SlaPolicy.from_dict(policy.to_dict()) == policy

    @pytest.mark.parametrize(
        "change",
        [
            {"warn_before": {"kind": "working_days", "amount": 1}, "warn_at_fraction": 0.8},
            {"warn_before": None, "warn_at_fraction": None},
            {"warn_before": None, "warn_at_fraction": 1.5},
            {"limit": {"kind": "working_days", "amount": 2.5}},
            {"limit": {"kind": "fortnights", "amount": 1}},
            {"limit": {"kind": "working_days", "amount": 0}},
            {"key": "has space"},
            {"count_from": "yesterday"},
        ],
    )
    def test_bad_data_is_refused(self, change: dict[str, Any]) -> None:
        data = {**DEFAULT_POLICIES["standard-5wd"].to_dict(), **change}
        with pytest.raises(PolicyError):
            SlaPolicy.from_dict(data)

    def test_ladder_must_run_start_warn_breach(self) -> None:
        e2 = EscalationStep("E2", "breach", "overdue_notice", ("unit_head",))
        e1 = EscalationStep("E1", "warn", "reminder", ("unit_liaison",))
        with pytest.raises(PolicyError):
            SlaPolicy("x", "x", Duration.working_days(1), warn_at_fraction=0.5, ladder=(e2, e1))

    def test_only_the_last_step_repeats(self) -> None:
        looping = EscalationStep(
            "E3", "breach", "supervision_notice", ("unit_head",), repeat_every=Duration.natural_hours(2), repeat_max=2
        )
        last = EscalationStep("E4", "breach", "pinned_supervision", ("unit_head",), Duration.working_days(1))
        with pytest.raises(PolicyError):
            SlaPolicy("x", "x", Duration.working_days(1), warn_at_fraction=0.5, ladder=(looping, last))
        SlaPolicy("x", "x", Duration.working_days(1), warn_at_fraction=0.5, ladder=(last, looping))

    def test_repeat_needs_both_fields(self) -> None:
        with pytest.raises(PolicyError):
            EscalationStep("E3", "breach", "supervision_notice", ("unit_head",), repeat_max=2)

    def test_unknown_role_is_refused(self) -> None:
        data = DEFAULT_POLICIES["consult-3wd"].to_dict()
        data["ladder"][0]["notify"] = ["the_mayor"]
        with pytest.raises(PolicyError):
            SlaPolicy.from_dict(data)

    def test_duration_arithmetic(self) -> None:
        assert Duration.working_hours(2).after(at(2026, 11, 23, 11), CAL) == at(2026, 11, 23, 14, 30)
        assert Duration.working_hours(2).before(at(2026, 11, 23, 14, 30), CAL) == at(2026, 11, 23, 11)
        assert Duration.natural_hours(0).after(MONDAY_10, CAL) == MONDAY_10
        assert Duration.natural_hours(1.5).after(MONDAY_10, CAL) - MONDAY_10 == timedelta(minutes=90)


def test_the_most_specific_sla_rule_wins_and_bad_rules_are_refused() -> None:
    import pytest as _pytest

    from escalation.policy import PolicyError, SlaRule, match_rule

    rules = [
        SlaRule("*", "*", "complaint", "complaint-5wd"),
        SlaRule("0102", "*", "*", "standard-5wd"),
        SlaRule("0102", "*", "complaint", "consult-3wd"),
        SlaRule("0102", "urgent", "complaint", "urgent-1wd"),
        SlaRule("0103", "*", "*", None),  # withdrawn
    ]
    pick = lambda c, p, d: r.policy_key if (r := match_rule(rules, c, p, d)) else None  # noqa: E731
    assert pick("0102", "urgent", "complaint") == "urgent-1wd"
    assert pick("0102", "normal", "complaint") == "consult-3wd"
    assert pick("0102", "normal", "consult") == "standard-5wd"
    assert pick("0999", "normal", "complaint") == "complaint-5wd"
    assert pick("0102", "normal", None) == "standard-5wd"  # unknown demand type matches only *
    assert pick("0103", "normal", "consult") is None
    with _pytest.raises(PolicyError):
        SlaRule("0102", "asap", "*", "standard-5wd")
    with _pytest.raises(PolicyError):
        SlaRule("0102", "*", "gossip", "standard-5wd")
