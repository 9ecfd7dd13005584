"""Who must hear about an event, through which template: pure decisions, no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from gridline_contracts.escalation import EscalationRaisedV1, SlaBreachedV1, SlaClockStartedV1, SlaWarnedV1
from gridline_contracts.intake import TicketClosedV1, TicketReceivedV1
from gridline_contracts.notify import NotificationFailedV1, NotificationSentV1, NotifyChannel, RecipientKind

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Recipient:
    kind: RecipientKind
    ref: str  # unit code, or "token" when the address is the sealed contact token itself
    contact_token: str | None = None  # intake's sealed phone (reporters)
    role: str | None = None  # the directory role (recipient table kind); None: same as `kind`

    @property
    def table_kind(self) -> str:
        return self.role or self.kind


@dataclass(frozen=True)
class NotificationRequest:
    """One message to send. ``dedupe_key`` makes the same event never produce two messages."""

    dedupe_key: str
    ticket_id: uuid.UUID | None
    template: str
    recipient: Recipient
    params: dict[str, str]
    urgent: bool = False  # 特急/紧急: never held back by quiet hours
    holdable: bool = False  # may wait for the end of the tenant's quiet hours (citizens only)


def on_ticket_received(event_id: uuid.UUID, e: TicketReceivedV1) -> list[NotificationRequest]:
    """受理回执: tell the reporter the ticket number, unless anonymous or unreachable."""
    if e.reporter.anonymous or not e.reporter.contact_token:
        return []
    return [
        NotificationRequest(
            dedupe_key=f"{event_id}:reporter",
            ticket_id=e.ticket_id,
            template="ticket_received",
            recipient=Recipient("reporter", "token", e.reporter.contact_token),
            params={"order": e.ticket_no},
            urgent=e.priority in ("critical", "urgent"),
            # Someone who just reported in the mini-program expects the receipt now; an order the
            # 12345 platform pushes at 23:30 about a call made hours earlier can wait until morning.
            holdable=e.channel != "citizen",
        )
    ]


def on_ticket_closed(event_id: uuid.UUID, e: TicketClosedV1) -> list[NotificationRequest]:
    """办结告知: tell the reporter the ticket is closed. Not for anonymous or unreachable reporters,
    nor for orders a 12345 platform pushed: the platform tells its caller (notify syncs the result
    back to it), so the citizen is not told twice. Events from before intake carried the reporter
    produce nothing."""
    r = e.reporter
    if r is None or r.anonymous or not r.contact_token or e.channel == "hotline" or e.origin is not None:
        return []
    return [
        NotificationRequest(
            dedupe_key=f"{event_id}:reporter",
            ticket_id=e.ticket_id,
            template="ticket_result",
            recipient=Recipient("reporter", "token", r.contact_token),
            params={"order": e.ticket_no},
            holdable=True,  # news, not an alarm: it may wait for the end of quiet hours
        )
    ]


def on_clock_started(event_id: uuid.UUID, e: SlaClockStartedV1) -> list[NotificationRequest]:
    """新工单提醒: tell the handling unit's liaison there is a ticket and when it is due."""
    due = e.due_at.astimezone(SHANGHAI).strftime("%m月%d日%H:%M")
    return [
        NotificationRequest(
            dedupe_key=f"{event_id}:unit:{e.unit_code}",
            ticket_id=e.ticket_id,
            template="ticket_assigned",
            recipient=Recipient("unit", e.unit_code),
            params={"order": e.ticket_no, "due": due},
        )
    ]


# --- who hears what on the SLA clock (黄牌, 红牌, the supervision ladder) ------------------------------

# Directory role → (the contract's recipient kind, which code identifies the recipient).
ROLE_KIND: dict[str, tuple[RecipientKind, str]] = {
    "unit_liaison": ("unit", "unit"),
    "unit_deputy_head": ("unit", "unit"),
    "unit_head": ("unit", "unit"),
    "grid_head": ("grid_staff", "grid"),
    "street_leader": ("supervisor", "unit"),
    "sponsor_unit": ("supervisor", "grid"),
    "sponsor_leader": ("supervisor", "grid"),
    "district_leader": ("supervisor", "tenant"),
    "supervisor": ("supervisor", "tenant"),
    "dispatcher": ("supervisor", "tenant"),  # 派单员: tenant-wide, like the supervisors
}
ROLES = tuple(ROLE_KIND)
ACTION_LABEL = {
    "reminder": "催办",
    "overdue_notice": "催办通知",
    "supervision_notice": "督办",
    "pinned_supervision": "挂牌督办",
    "circular": "通报",
    "interview": "约谈",
    "accountability": "问责",
}


def role_recipient(role: str, unit_code: str, grid_code: str | None) -> Recipient | None:
    """The recipient-table entry a role resolves to (the liaison is the unit's own row, kind "unit")."""
    kind, scope = ROLE_KIND[role]
    ref = {"unit": unit_code, "grid": grid_code, "tenant": "*"}[scope]
    if ref is None:
        return None
    return Recipient(kind, ref, role=None if role == "unit_liaison" else role)


def _for_roles(
    event_id: uuid.UUID,
    ticket_id: uuid.UUID,
    roles: Sequence[str],
    unit: str,
    grid: str | None,
    template: str,
    params: dict[str, str],
) -> list[NotificationRequest]:
    out = []
    for role in dict.fromkeys(roles):
        r = role_recipient(role, unit, grid)
        if r is not None:
            key = f"{event_id}:{role}:{r.ref}"
            out.append(NotificationRequest(key, ticket_id, template, r, params, urgent=True))
    return out


def on_sla_warned(event_id: uuid.UUID, e: SlaWarnedV1) -> list[NotificationRequest]:
    """黄牌: the unit's liaison is told the deadline is near."""
    due = e.due_at.astimezone(SHANGHAI).strftime("%m月%d日%H:%M")
    params = {"order": e.ticket_no, "due": due}
    return _for_roles(event_id, e.ticket_id, ["unit_liaison"], e.unit_code, e.grid_code, "sla_warning", params)


def on_sla_breached(event_id: uuid.UUID, e: SlaBreachedV1) -> list[NotificationRequest]:
    """红牌: the liaison and the unit head are told the ticket is overdue."""
    due = e.due_at.astimezone(SHANGHAI).strftime("%m月%d日%H:%M")
    params = {"order": e.ticket_no, "due": due}
    roles = ["unit_liaison", "unit_head"]
    return _for_roles(event_id, e.ticket_id, roles, e.unit_code, e.grid_code, "sla_breached", params)


def on_escalation(event_id: uuid.UUID, e: EscalationRaisedV1) -> list[NotificationRequest]:
    """One rung of the ladder: everyone the rung names, by role (催办 → 督办 → 挂牌 …)."""
    params = {"order": e.ticket_no, "action": ACTION_LABEL.get(e.action, e.action)}
    roles = [r for r in e.recipients if r in ROLE_KIND]
    return _for_roles(event_id, e.ticket_id, roles, e.unit_code, e.grid_code, "escalation_raised", params)


SlaEvent = SlaClockStartedV1 | SlaWarnedV1 | SlaBreachedV1 | EscalationRaisedV1


def for_added_roles(
    event_id: uuid.UUID, e: SlaEvent, roles: Sequence[str], template: dict[str, str]
) -> list[NotificationRequest]:
    """Roles a tenant's rule adds to an SLA event beyond those the event itself names (rules.py).

    ``template``: role → the template of its rule's first step. Same values as the event's own
    messages; same key scheme, so a role both named and added is still told once.
    """
    if isinstance(e, EscalationRaisedV1):
        params = {"order": e.ticket_no, "action": ACTION_LABEL.get(e.action, e.action)}
    else:
        params = {"order": e.ticket_no, "due": e.due_at.astimezone(SHANGHAI).strftime("%m月%d日%H:%M")}
    grid = getattr(e, "grid_code", None)
    out: list[NotificationRequest] = []
    for role in dict.fromkeys(r for r in roles if r in ROLE_KIND):
        out += _for_roles(event_id, e.ticket_id, [role], e.unit_code, grid, template[role], params)
    return out


Outcome = Literal["sent", "rejected", "retryable", "ambiguous"]
LookupState = Literal["sent", "not_found", "unknown"]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one message. Defaults follow reference §4 (full jitter, base 1 s, cap 60 s)."""

    max_attempts: int = 6  # over all providers
    per_provider_attempts: int = 3  # transient failures on one provider before failing over
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    settle_grace_s: float = 120.0  # how long a provider may take to list a send it accepted
    settle_retry_s: float = 30.0  # between lookups that could not conclude
    settle_give_up_s: float = 86400.0  # stop looking (and alert) after this long


@dataclass(frozen=True)
class Attempted:
    """What one provider attempt (or the lookup that settled it) told us about a notification."""

    outcome: Outcome | Literal["not_sent"]  # not_sent: ambiguous, then proved never sent by a lookup
    provider: str
    code: str
    message: str
    provider_message_id: str | None = None
    retry_after_s: float | None = None
    failover: bool = False


@dataclass(frozen=True)
class Progress:
    """Where a notification stands before the attempt: counters and which provider it is on."""

    notification_id: uuid.UUID
    ticket_id: uuid.UUID | None
    template: str
    recipient_kind: RecipientKind
    masked: str
    attempts: int  # including the one just made
    provider_index: int
    provider_attempts: int  # on the current provider, including the one just made
    providers: int  # how many providers the channel has
    channel: NotifyChannel = "sms"


@dataclass(frozen=True)
class Next:
    status: Literal["pending", "sent", "failed", "ambiguous"]
    provider_index: int
    provider_attempts: int
    next_attempt_at: datetime
    events: list[NotificationSentV1 | NotificationFailedV1]
    failed_over: bool = False


def backoff(policy: RetryPolicy, attempts: int, jitter: float) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^n)); ``jitter`` is the caller's uniform [0, 1) draw."""
    return jitter * min(policy.backoff_cap_s, policy.backoff_base_s * 2.0 ** max(attempts - 1, 0))


def after_attempt(p: Progress, a: Attempted, policy: RetryPolicy, now: datetime, jitter: float) -> Next:
    """The notification's next state after one attempt — the whole exactly-once/failover rule set.

    * ``sent`` is final. ``ambiguous`` (the provider may have sent it) is never resent: it waits for
      a lookup in the provider's records (`settle`).
    * Another provider is tried only when this one has definitely not sent the message and either
      refused for reasons of its own (``failover``: quota, account, templates, hour/day counters) or
      kept failing transiently ``per_provider_attempts`` times.
    * ``retryable`` waits the provider's retry-after (flow control: a deferral) or a jittered backoff.
    * Anything else (bad number, bad content) fails: another provider would refuse it too.
    """
    stay = Next("pending", p.provider_index, p.provider_attempts, now, [])
    if a.outcome == "sent":
        return Next("sent", p.provider_index, p.provider_attempts, now, [_sent(p, a, now)])
    if a.outcome == "ambiguous":
        return Next(
            "ambiguous", p.provider_index, p.provider_attempts, now + timedelta(seconds=policy.settle_grace_s), []
        )
    has_next = p.provider_index + 1 < p.providers
    out_of_attempts = p.attempts >= policy.max_attempts
    if a.outcome in ("retryable", "not_sent") or a.failover:
        wants_other = a.failover or p.provider_attempts >= policy.per_provider_attempts
        if wants_other and has_next and not out_of_attempts:
            return Next("pending", p.provider_index + 1, 0, now, [], failed_over=True)
        if a.outcome != "rejected" and not out_of_attempts:
            wait = max(a.retry_after_s or 0.0, backoff(policy, p.attempts, jitter))
            return Next("pending", stay.provider_index, stay.provider_attempts, now + timedelta(seconds=wait), [])
    return Next("failed", p.provider_index, p.provider_attempts, now, [_failed(p, a, now)])


def settle(
    p: Progress,
    lookup: LookupState,
    provider: str,
    code: str,
    provider_message_id: str | None,
    attempt_started_at: datetime,
    policy: RetryPolicy,
    now: datetime,
    jitter: float,
) -> Next | None:
    """Decide an ambiguous attempt from the provider's own records; None = still unknown, ask later."""
    if lookup == "sent":
        a = Attempted("sent", provider, code or "settled", "found in the provider's records", provider_message_id)
        return after_attempt(p, a, policy, now, jitter)
    if lookup == "not_found" and now - attempt_started_at >= timedelta(seconds=policy.settle_grace_s):
        a = Attempted("not_sent", provider, "not_sent", "absent from the provider's records: never sent")
        return after_attempt(p, a, policy, now, jitter)
    if now - attempt_started_at >= timedelta(seconds=policy.settle_give_up_s):
        a = Attempted("rejected", provider, "unsettled", "the provider's records could not settle this send")
        return after_attempt(p, a, policy, now, jitter)
    return None


def _sent(p: Progress, a: Attempted, now: datetime) -> NotificationSentV1:
    return NotificationSentV1(
        notification_id=p.notification_id,
        ticket_id=p.ticket_id,
        channel=p.channel,
        provider=a.provider,
        template=p.template,
        recipient_kind=p.recipient_kind,
        masked_recipient=p.masked,
        provider_message_id=a.provider_message_id,
        sent_at=now,
    )


def _failed(p: Progress, a: Attempted, now: datetime) -> NotificationFailedV1:
    return NotificationFailedV1(
        notification_id=p.notification_id,
        ticket_id=p.ticket_id,
        channel=p.channel,
        provider=a.provider,
        template=p.template,
        recipient_kind=p.recipient_kind,
        masked_recipient=p.masked,
        reason_code=a.code,
        reason=a.message[:500],
        failed_at=now,
    )


# --- limits: quiet hours and per-recipient rates (issue item 5) ------------------------------------


@dataclass(frozen=True)
class TenantLimits:
    """A tenant's delivery limits; defaults come from settings, a tenant may override them."""

    quiet_start: time | None = time(22, 0)  # None: no quiet hours
    quiet_end: time = time(8, 0)
    per_recipient_hour: int | None = None
    per_recipient_day: int | None = 50  # Aliyun's default for notification templates (reference §1.7)
    tz: str = "Asia/Shanghai"


def quiet_until(now: datetime, limits: TenantLimits, *, citizen: bool, urgent: bool) -> datetime | None:
    """When a message may go out if ``now`` is inside the tenant's quiet hours, else None.

    Only non-urgent messages to citizens wait; staff and urgent messages go at once. A deferred
    message is kept and sent at the end of the window, never dropped.
    """
    if not citizen or urgent or limits.quiet_start is None:
        return None
    local = now.astimezone(ZoneInfo(limits.tz))
    t, start, end = local.timetz().replace(tzinfo=None), limits.quiet_start, limits.quiet_end
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    end_today = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return (end_today if end_today > local else end_today + timedelta(days=1)).astimezone(now.tzinfo)


@dataclass(frozen=True)
class RecentSends:
    """Sends to one recipient in the rolling windows: counts and the oldest send in each."""

    hour: int = 0
    oldest_in_hour: datetime | None = None
    day: int = 0
    oldest_in_day: datetime | None = None


def rate_deferral(now: datetime, recent: RecentSends, limits: TenantLimits) -> datetime | None:
    """When the next send to this recipient fits the tenant's per-recipient limits; None = now."""
    waits: list[datetime] = []
    if limits.per_recipient_hour is not None and recent.hour >= limits.per_recipient_hour:
        waits.append((recent.oldest_in_hour or now) + timedelta(hours=1))
    if limits.per_recipient_day is not None and recent.day >= limits.per_recipient_day:
        waits.append((recent.oldest_in_day or now) + timedelta(days=1))
    return max(waits) if waits else None


# --- delivery receipts (issue item 6) ---------------------------------------------------------------

Delivery = Literal["pending", "sent", "delivered", "failed", "expired"]


@dataclass(frozen=True)
class Receipt:
    """A carrier's status report as the provider pushed (or we pulled) it, normalised."""

    provider: str
    key: str  # provider's own id for the report: "<biz_id>:<phone hash>" (Aliyun) or the SerialNo (Tencent)
    out_id: str | None  # our attempt id when the provider echoes it
    provider_message_id: str | None
    delivered: bool
    code: str
    reported_at: datetime | None


def delivery_after(current: Delivery, r: Receipt) -> Delivery:
    """Receipts are at-least-once and may arrive out of order: ``delivered`` is final."""
    if current == "delivered":
        return current
    return "delivered" if r.delivered else "failed"


def expire_after(sent_at: datetime, now: datetime, window: timedelta) -> bool:
    """A send with no receipt for this long is ``expired`` (Aliyun stops re-pushing after ~16 min)."""
    return now - sent_at >= window


# --- templates per tenant, checked when saved (issue item 5) --------------------------------------

# What each of our template names is given to fill in (the rules above decide the values).
TEMPLATE_VARIABLES: dict[str, tuple[str, ...]] = {
    "ticket_received": ("order",),
    "ticket_result": ("order",),
    "ticket_assigned": ("order", "due"),
    "sla_warning": ("order", "due"),
    "sla_breached": ("order", "due"),
    "escalation_raised": ("order", "action"),
}
# Provider rules (reference §1.6, §1.9, §2.3): content length, the signature brackets the provider
# adds itself, no links, Aliyun's named ${var} and Tencent's positional {1}… matching the variables.
MAX_CONTENT = 500
_FORBIDDEN = ("【", "】", "http://", "https://", "www.")
_ALIYUN_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_TENCENT_VAR = re.compile(r"\{(\d+)\}")


@dataclass(frozen=True)
class TemplateProblem:
    code: str  # stable snake_case
    message: str  # Chinese, for the admin


# The longest value each variable can take: ticket numbers are <tenant 6>-<yyyymmdd>-<seq 6>, deadlines
# "%m月%d日%H:%M", actions the longest ACTION_LABEL.
VARIABLE_MAX_CHARS: dict[str, int] = {"order": 22, "due": 11, "action": 4}


def check_template(
    name: str, provider: str, text: str, variables: Sequence[str], *, tencent_variable_max_chars: int | None = None
) -> list[TemplateProblem]:
    """Problems that would make the provider refuse the template or our sends with it; [] = fine.

    ``tencent_variable_max_chars``: Tencent's per-variable limit for individual-verified accounts
    (12, reference §2.3); None for enterprise accounts, which have no per-variable limit.
    """
    problems: list[TemplateProblem] = []
    given = TEMPLATE_VARIABLES.get(name)
    if given is None:
        return [TemplateProblem("unknown_template_name", f"没有名为 {name} 的通知模板")]
    unknown = [v for v in variables if v not in given]
    if unknown:
        problems.append(TemplateProblem("unknown_variable", f"变量 {'、'.join(unknown)} 不在 {name} 提供的变量中"))
    if len(text) > MAX_CONTENT:
        problems.append(TemplateProblem("content_too_long", f"模板内容超过 {MAX_CONTENT} 字"))
    bad = [w for w in _FORBIDDEN if w in text.lower()]
    if bad:
        problems.append(
            TemplateProblem("forbidden_content", f"模板内容不能包含 {'、'.join(bad)}（签名由服务商添加，不允许链接）")
        )
    if provider == "aliyun":
        used = set(_ALIYUN_VAR.findall(text))
        if used != set(variables):
            problems.append(TemplateProblem("variables_mismatch", "模板中的 ${变量} 与声明的变量不一致"))
    else:
        positions = sorted({int(p) for p in _TENCENT_VAR.findall(text)})
        if positions != list(range(1, len(variables) + 1)):
            problems.append(TemplateProblem("variables_mismatch", "模板中的 {1}、{2}… 与声明的变量个数不一致"))
        limit = tencent_variable_max_chars
        too_long = [v for v in variables if limit is not None and VARIABLE_MAX_CHARS.get(v, 0) > limit]
        if too_long:
            longest = "、".join(f"{v}（最长 {VARIABLE_MAX_CHARS[v]} 字）" for v in too_long)
            problems.append(TemplateProblem("variable_too_long", f"变量 {longest} 超过腾讯云每个变量 {limit} 字的限制"))
    return problems
