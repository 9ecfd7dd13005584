"""Who hears an event on which channels, in which order, with which template: pure rules, no I/O.

A tenant's rule for (event type, role) is an ordered list of channel steps, each naming the
template used on that channel. Without a tenant rule the defaults below apply. For one recipient,
the steps are kept only where the recipient has an address on that channel (a phone for SMS, an
openid for WeChat, a userid for WeCom), then put in the recipient's preferred order; the first
step is the message, the rest are its fallbacks, taken in order when a step definitely did not
reach the recipient (WeChat 43101 not subscribed, WeCom invaliduser, a channel that keeps failing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Channel = Literal["sms", "wechat", "wecom"]
CHANNELS: tuple[Channel, ...] = ("sms", "wechat", "wecom")

# Event types notify acts on → the variables its messages are given (domain.on_* build them).
EVENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "ticket.received": ("order",),
    "ticket.closed": ("order",),
    "sla.clock_started": ("order", "due"),
    "sla.warned": ("order", "due"),
    "sla.breached": ("order", "due"),
    "sla.escalated": ("order", "action"),
}
CITIZEN = "citizen"  # the reporter of a ticket
CITIZEN_EVENTS = ("ticket.received", "ticket.closed")  # 受理回执, 办结告知
STAFF_ROLES = (
    "unit_liaison",
    "unit_deputy_head",
    "unit_head",
    "grid_head",
    "street_leader",
    "sponsor_unit",
    "sponsor_leader",  # 包抓领导
    "district_leader",
    "supervisor",
    "dispatcher",
)
ROLES = (CITIZEN, *STAFF_ROLES)
# Citizens are reached by SMS or the mini-program, staff by SMS or WeCom.
_CITIZEN_CHANNELS: tuple[Channel, ...] = ("wechat", "sms")
_STAFF_CHANNELS: tuple[Channel, ...] = ("wecom", "sms")
CHANNELS_FOR: dict[str, tuple[Channel, ...]] = {CITIZEN: _CITIZEN_CHANNELS} | {r: _STAFF_CHANNELS for r in STAFF_ROLES}


@dataclass(frozen=True)
class Step:
    channel: Channel
    template: str  # one of our template names (domain.TEMPLATE_VARIABLES)


@dataclass(frozen=True)
class RuleProblem:
    code: str
    message: str


def default_steps(role: str, template: str) -> list[Step]:
    """The seeded default: the mini-program first for citizens, WeCom first for staff, SMS last."""
    return [Step(c, template) for c in CHANNELS_FOR.get(role, ("sms",))]


def check_rule(
    event_type: str, role: str, steps: Sequence[Step], template_variables: Mapping[str, Iterable[str]]
) -> list[RuleProblem]:
    """Problems with a tenant's rule; [] = fine. An empty list of steps silences the role for the event."""
    provided = EVENT_VARIABLES.get(event_type)
    if provided is None:
        known = "、".join(EVENT_VARIABLES)
        return [RuleProblem("unknown_event_type", f"不支持的事件类型 {event_type}（可选：{known}）")]
    if role not in ROLES:
        return [RuleProblem("unknown_role", f"不支持的角色 {role}（可选：{'、'.join(ROLES)}）")]
    problems: list[RuleProblem] = []
    if role == CITIZEN and event_type not in CITIZEN_EVENTS:
        problems.append(
            RuleProblem("role_not_notified", "市民只在受理回执（ticket.received）和办结告知（ticket.closed）中接收通知")
        )
    if role != CITIZEN and event_type in CITIZEN_EVENTS:
        problems.append(RuleProblem("role_not_notified", "受理回执和办结告知只发给市民，工作人员从派单起接收通知"))
    seen: set[str] = set()
    for step in steps:
        if step.channel in seen:
            problems.append(RuleProblem("duplicate_channel", f"渠道 {step.channel} 重复"))
        seen.add(step.channel)
        if step.channel not in CHANNELS_FOR[role]:
            who, allowed = ("市民" if role == CITIZEN else "工作人员"), "、".join(CHANNELS_FOR[role])
            text = f"{who}不能通过 {step.channel} 接收（可选：{allowed}）"
            problems.append(RuleProblem("channel_not_for_role", text))
        needed = template_variables.get(step.template)
        if needed is None:
            problems.append(RuleProblem("unknown_template_name", f"没有名为 {step.template} 的通知模板"))
        elif missing := [v for v in needed if v not in provided]:
            problems.append(
                RuleProblem(
                    "template_needs_missing_variable",
                    f"模板 {step.template} 需要变量 {'、'.join(missing)}，事件 {event_type} 不提供",
                )
            )
    return problems


def plan(steps: Sequence[Step], reachable: Iterable[str], preferred: Sequence[str] = ()) -> list[Step]:
    """The recipient's steps in sending order: reachable ones only, preferred channels first (stable)."""
    can = set(reachable)
    rank = {c: i for i, c in enumerate(preferred)}
    kept = [(i, s) for i, s in enumerate(steps) if s.channel in can]
    return [s for _, s in sorted(kept, key=lambda p: (rank.get(p[1].channel, len(rank)), p[0]))]


# --- fitting values into WeChat subscribe-message keyword types (reference §3.3) ------------------

_NON_CHINESE = re.compile(r"[^\u4e00-\u9fff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LIMITS = {"thing": 20, "number": 32, "letter": 32, "character_string": 32, "phone_number": 17, "car_number": 8}


def wechat_kind(key: str) -> str:
    """``thing2`` → ``thing``: the keyword's type is its key without the trailing index."""
    return key.rstrip("0123456789")


def fit_wechat_value(key: str, value: str) -> str:
    """Fit a value to its keyword type rather than have WeChat refuse the whole message (47003).

    Decision: cut to the type's length (thing 20, character_string 32 …); ``phrase`` keeps only
    Chinese characters, at most 5; ``character_string`` drops what is not printable ASCII; control
    characters and newlines go everywhere. Types with a format (time, date, amount) pass as they are:
    the template binds them to values we format ourselves.
    """
    value = _CONTROL.sub(" ", value).strip()
    kind = wechat_kind(key)
    if kind == "phrase":
        return _NON_CHINESE.sub("", value)[:5]
    if kind == "character_string":
        value = "".join(ch for ch in value if "!" <= ch <= "~")
    if kind == "name":
        return value[:10]
    limit = _LIMITS.get(kind)
    return value[:limit] if limit else value


def render(text: str, values: Mapping[str, str]) -> str:
    """``"工单{order}"`` → the text with our variables filled in; an unknown name stays as written."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


# What staff read on WeCom when no tenant text is configured (text messages, ≤2048 bytes).
DEFAULT_WECOM_TEXT: dict[str, str] = {
    "ticket_received": "您反映的问题已受理，工单号 {order}。",
    "ticket_result": "您反映的问题（工单号 {order}）已办结，感谢您的监督。",
    "ticket_assigned": "新工单 {order} 已派至本单位，请于 {due} 前办结。",
    "sla_warning": "【黄牌预警】工单 {order} 将于 {due} 到期，请尽快办理。",
    "sla_breached": "【红牌超时】工单 {order} 已于 {due} 超时，请立即办理并说明原因。",
    "escalation_raised": "工单 {order}：{action}。请立即办理。",
}
