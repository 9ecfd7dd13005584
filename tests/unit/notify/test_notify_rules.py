"""Who hears what: rule validation, channel order by reachability and preference, WeChat value fitting."""

from __future__ import annotations

import re

import pytest

from gridline_fakes.wechat import _fits  # the fake's own, independent keyword-type rules
from notify import domain, rules
from notify.rules import Step


def steps(*channels: str, template: str = "sla_warning") -> list[Step]:
    return [Step(c, template) for c in channels]  # type: ignore[arg-type]


def codes(problems: list[rules.RuleProblem]) -> list[str]:
    return [p.code for p in problems]


def test_defaults_put_the_richer_channel_first_and_sms_last() -> None:
    assert rules.default_steps("citizen", "ticket_received") == steps("wechat", "sms", template="ticket_received")
    assert rules.default_steps("sponsor_leader", "sla_breached") == steps("wecom", "sms", template="sla_breached")
    assert rules.default_steps("dispatcher", "sla_breached")[0].channel == "wecom"


@pytest.mark.parametrize(
    ("event_type", "role", "given", "expected"),
    [
        ("sla.warned", "unit_liaison", steps("wecom", "sms"), []),
        ("sla.warned", "unit_liaison", [], []),  # silences the role
        ("sla.lost", "unit_liaison", steps("sms"), ["unknown_event_type"]),
        ("sla.warned", "janitor", steps("sms"), ["unknown_role"]),
        ("sla.warned", "unit_head", steps("wechat"), ["channel_not_for_role"]),
        ("ticket.received", "citizen", steps("wecom", template="ticket_received"), ["channel_not_for_role"]),
        ("sla.warned", "citizen", steps("sms"), ["role_not_notified"]),
        ("sla.warned", "grid_head", steps("sms", "sms"), ["duplicate_channel"]),
        ("sla.warned", "grid_head", steps("sms", template="nope"), ["unknown_template_name"]),
        # escalation_raised needs {action}, which sla.warned does not carry
        ("sla.warned", "grid_head", steps("sms", template="escalation_raised"), ["template_needs_missing_variable"]),
        ("sla.escalated", "sponsor_leader", steps("wecom", template="escalation_raised"), []),
    ],
)
def test_check_rule(event_type: str, role: str, given: list[Step], expected: list[str]) -> None:
    assert codes(rules.check_rule(event_type, role, given, domain.TEMPLATE_VARIABLES)) == expected


def test_every_problem_has_a_chinese_message() -> None:
    problems = rules.check_rule("sla.warned", "unit_head", steps("wechat", "wechat"), domain.TEMPLATE_VARIABLES)
    assert problems and all(re.search(r"[\u4e00-\u9fff]", p.message) for p in problems)


def test_plan_keeps_reachable_channels_in_preference_then_rule_order() -> None:
    rule = steps("wecom", "sms")
    assert rules.plan(rule, {"sms"}) == steps("sms")  # no WeCom account: SMS only
    assert rules.plan(rule, {"sms", "wecom"}) == steps("wecom", "sms")
    assert rules.plan(rule, {"sms", "wecom"}, ["sms"]) == steps("sms", "wecom")  # prefers texts
    assert rules.plan(rule, set()) == []
    assert rules.plan(steps("sms"), {"sms", "wecom"}) == steps("sms")  # the rule limits the channels


@pytest.mark.parametrize(
    ("key", "value", "fitted"),
    [
        ("thing2", "道路积水严重，车辆无法通行，请尽快派人处理，谢谢配合", "道路积水严重，车辆无法通行，请尽快派人处"),
        ("phrase4", "已超时 overdue", "已超时"),
        ("phrase4", "正在处理中请稍候", "正在处理中"),
        ("character_string1", "GD-2025 0101 编号001", "GD-20250101001"),
        ("thing2", "第一行\n第二行", "第一行 第二行"),
        ("time3", "2025-01-02 15:01", "2025-01-02 15:01"),
    ],
)
def test_fit_wechat_value(key: str, value: str, fitted: str) -> None:
    out = rules.fit_wechat_value(key, value)
    assert out == fitted
    assert _fits(rules.wechat_kind(key), out), "the fake (WeChat's rules) must accept what we fit"


def test_render_fills_known_variables_only() -> None:
    assert rules.render("工单{order}于{due}到期{x}", {"order": "GD1", "due": "5月1日"}) == "工单GD1于5月1日到期{x}"


def test_default_wecom_texts_use_only_variables_their_templates_provide() -> None:
    for name, text in rules.DEFAULT_WECOM_TEXT.items():
        used = set(re.findall(r"\{([a-z_]+)\}", text))
        assert used <= set(domain.TEMPLATE_VARIABLES[name]), name


# --- Tencent's per-variable length (reference §2.3: ≤12 characters for individual-verified accounts) ---


def test_tencent_template_check_enforces_the_per_variable_limit_when_configured() -> None:
    text = "工单{1}将于{2}到期，请尽快办理。"
    assert domain.check_template("sla_warning", "tencent", text, ["order", "due"]) == []
    problems = domain.check_template("sla_warning", "tencent", text, ["order", "due"], tencent_variable_max_chars=12)
    assert [p.code for p in problems] == ["variable_too_long"]
    assert "order" in problems[0].message and "due" not in problems[0].message  # 11 ≤ 12
    # Aliyun has no such limit in the reference: unaffected.
    aliyun = domain.check_template("sla_warning", "aliyun", "工单${order}将于${due}到期", ["order", "due"])
    assert aliyun == []


async def test_tencent_client_refuses_values_over_the_limit_without_calling_tencent() -> None:
    import httpx

    from notify.providers import SmsMessage, TencentSmsClient

    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    client = TencentSmsClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        secret_id="id",
        secret_key="key",
        sdk_app_id="1400006666",
        max_param_chars=12,
    )
    msg = SmsMessage("13800138000", "某市12345", "1110", {"1": "330106-20261122-000123", "2": "11月22日18:00"}, "o1")
    result = await client.send(msg)
    assert (result.outcome, result.code, result.failover) == ("rejected", "param_too_long", True)
    assert calls == []


def test_staff_roles_do_not_hear_receipts() -> None:
    problems = rules.check_rule("ticket.received", "dispatcher", steps("sms", template="ticket_received"), {})
    assert "role_not_notified" in codes(problems)


def test_a_rule_can_add_a_role_to_an_sla_event() -> None:
    import uuid
    from datetime import UTC, datetime

    from gridline_contracts.escalation import SlaBreachedV1

    due = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    e = SlaBreachedV1(
        ticket_id=uuid.UUID(int=5),
        ticket_no="N1",
        unit_code="U1",
        grid_code="G7",
        policy_key="p",
        due_at=due,
        detected_at=due,
    )
    eid = uuid.UUID(int=9)
    added = domain.for_added_roles(
        eid,
        e,
        ["grid_head", "sponsor_leader", "nobody"],
        {"grid_head": "sla_breached", "sponsor_leader": "sla_warning", "nobody": "x"},
    )
    assert [(r.recipient.table_kind, r.recipient.ref, r.template) for r in added] == [
        ("grid_head", "G7", "sla_breached"),
        ("sponsor_leader", "G7", "sla_warning"),
    ]
    assert added[0].params == {"order": "N1", "due": "11月30日17:30"}
    # Same key scheme as the event's own roles: a role both named and added is told once.
    own = {r.dedupe_key for r in domain.on_sla_breached(eid, e)}
    again = domain.for_added_roles(eid, e, ["unit_head"], {"unit_head": "sla_breached"})
    assert {r.dedupe_key for r in again} <= own
