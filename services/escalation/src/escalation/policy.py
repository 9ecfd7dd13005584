"""SLA policies as data: a time limit, when to warn, and the supervision ladder after that.

A policy is immutable and versioned: a clock records ``(key, version)`` when it is armed and is
always ticked with exactly that policy (PagerDuty semantics: an incident follows the policy as it was
at creation, notify-providers-and-escalation.md §5.1), so editing a tenant's policy means saving a
new version and never changes open tickets.

The built-in defaults (``DEFAULT_POLICIES``) are starting points, each justified from
``domain-12345-grid.md`` in its ``description``; a tenant's own table (a Mapping passed in) wins over
them key by key. Every number is configurable because no national 12345 handling-time table exists
(domain §0, take-away 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from gridline_calendar import WorkCalendar
from gridline_contracts.escalation import EscalationAction, RecipientRole
from gridline_contracts.intake import Priority

LimitKind = Literal["natural_hours", "working_hours", "working_days"]
Anchor = Literal["start", "warn", "breach"]
CountFrom = Literal["next_day", "same_day"]
DueSource = Literal["policy", "platform", "extension"]

_ANCHOR_ORDER: dict[str, int] = {"start": 0, "warn": 1, "breach": 2}
_ZERO = timedelta(0)


class PolicyError(ValueError):
    """A policy is not valid data (bad amount, unknown kind, ladder out of order …)."""

    code = "invalid_policy"


class UnknownPolicyError(LookupError):
    """No policy with this key, neither in the tenant's table nor among the defaults."""

    code = "unknown_policy"

    def __init__(self, key: str) -> None:
        super().__init__(f"未知的时限策略 {key!r}: no SLA policy with this key in the tenant table or the defaults")
        self.key = key


@dataclass(frozen=True)
class Duration:
    """An amount of time in one of the three ways limits are counted (domain §1.5, take-away 1)."""

    kind: LimitKind
    amount: float

    def __post_init__(self) -> None:
        if self.kind not in ("natural_hours", "working_hours", "working_days"):
            raise PolicyError(f"unknown duration kind {self.kind!r}")
        if not math.isfinite(self.amount) or self.amount < 0:
            raise PolicyError(f"duration amount must be a finite number >= 0, got {self.amount!r}")
        if self.kind == "working_days" and self.amount != int(self.amount):
            raise PolicyError(f"working days must be whole, got {self.amount!r}")

    @classmethod
    def natural_hours(cls, amount: float) -> Duration:
        return cls("natural_hours", amount)

    @classmethod
    def working_hours(cls, amount: float) -> Duration:
        return cls("working_hours", amount)

    @classmethod
    def working_days(cls, amount: int) -> Duration:
        return cls("working_days", amount)

    @property
    def is_working_time(self) -> bool:
        return self.kind != "natural_hours"

    def after(self, start: datetime, calendar: WorkCalendar, *, from_next_day: bool = True) -> datetime:
        """When this much time has passed since ``start`` (a zero duration is ``start`` itself)."""
        if self.amount == 0:
            return calendar.add_natural_hours(start, 0)
        if self.kind == "natural_hours":
            return calendar.add_natural_hours(start, self.amount)
        if self.kind == "working_hours":
            return calendar.add_working_hours(start, self.amount)
        return calendar.add_working_days(start, int(self.amount), from_next_day=from_next_day)

    def before(self, end: datetime, calendar: WorkCalendar) -> datetime:
        """The moment this much time before ``end`` (working days keep the time of day)."""
        if self.kind == "natural_hours":
            return calendar.add_natural_hours(end, -self.amount)
        if self.kind == "working_hours":
            return calendar.add_working_hours(end, -self.amount)
        return calendar.subtract_working_days(end, int(self.amount))

    def describe(self) -> str:
        amount = f"{self.amount:g}"
        unit = {"natural_hours": "hour", "working_hours": "working hour", "working_days": "working day"}[self.kind]
        return f"{amount} {unit}{'' if amount == '1' else 's'}"


def measure(kind: LimitKind, a: datetime, b: datetime, calendar: WorkCalendar) -> timedelta:
    """Time from ``a`` to ``b`` as a limit of this kind counts it: elapsed, or working time."""
    if kind == "natural_hours":
        return b - a
    return calendar.working_time_between(a, b)


def shift(kind: LimitKind, t: datetime, span: timedelta, calendar: WorkCalendar) -> datetime:
    """``t`` moved later by ``span`` measured as a limit of this kind counts time (see ``measure``)."""
    if span <= _ZERO:
        return t
    if kind == "natural_hours":
        return calendar.add_natural_hours(t, span)
    return calendar.add_working_hours(t, span)


@dataclass(frozen=True)
class EscalationStep:
    """One rung of the ladder: at ``anchor`` + ``offset``, do ``action`` and tell the ``notify`` roles.

    Anchors: ``start`` (the clock started), ``warn`` (黄牌), ``breach`` (红牌). Only the last step of a
    ladder may repeat (every ``repeat_every``, at most ``repeat_max`` more times): loops belong to the
    top level only (reference §5.1).
    """

    code: str
    anchor: Anchor
    action: EscalationAction
    notify: tuple[RecipientRole, ...]
    offset: Duration = Duration("natural_hours", 0)
    repeat_every: Duration | None = None
    repeat_max: int = 0

    def __post_init__(self) -> None:
        if not self.code:
            raise PolicyError("a ladder step needs a code (E0…E7)")
        if self.anchor not in _ANCHOR_ORDER:
            raise PolicyError(f"step {self.code}: unknown anchor {self.anchor!r}")
        if not self.notify:
            raise PolicyError(f"step {self.code}: nobody to notify")
        if self.repeat_max < 0:
            raise PolicyError(f"step {self.code}: repeat_max must be >= 0")
        if (self.repeat_every is None) != (self.repeat_max == 0):
            raise PolicyError(f"step {self.code}: give both repeat_every and repeat_max > 0, or neither")
        if self.repeat_every is not None and self.repeat_every.amount == 0:
            raise PolicyError(f"step {self.code}: repeat_every must be longer than zero")


@dataclass(frozen=True)
class TimeLimit:
    """A limit counted from some event: the 退单 window (from dispatch) or a review step (from the request).

    ``count_from`` applies to working days as on the policy: the start day is not counted
    (``next_day``) or counted (``same_day``).
    """

    limit: Duration
    count_from: CountFrom = "next_day"

    def __post_init__(self) -> None:
        if self.limit.amount <= 0:
            raise PolicyError(f"a time limit must be longer than zero, got {self.limit.describe()}")
        if self.count_from not in ("next_day", "same_day"):
            raise PolicyError(f"count_from must be 'next_day' or 'same_day', got {self.count_from!r}")

    def after(self, start: datetime, calendar: WorkCalendar) -> datetime:
        return self.limit.after(start, calendar, from_next_day=self.count_from == "next_day")

    def describe(self) -> str:
        return self.limit.describe() + (" (same day counted)" if self.count_from == "same_day" else "")


@dataclass(frozen=True)
class Deadlines:
    warn_at: datetime
    due_at: datetime
    due_source: DueSource
    provisional: bool  # some day in [start, due] came from the calendar's fallback rule, not data


@dataclass(frozen=True)
class SlaPolicy:
    """A time limit with its warning rule and ladder. Exactly one of ``warn_at_fraction``/``warn_before``.

    ``warn_at_fraction`` warns when that share of the window (measured as the limit counts time) has
    passed; ``warn_before`` warns that long before the deadline (e.g. 1 working day, S9's 黄牌).
    ``count_from`` applies to working-day limits: the start day is not counted (``next_day``, default)
    or counted (``same_day``); see ``WorkCalendar.add_working_days``.
    """

    key: str
    name: str
    limit: Duration
    warn_at_fraction: float | None = None
    warn_before: Duration | None = None
    ladder: tuple[EscalationStep, ...] = ()
    count_from: CountFrom = "next_day"
    version: int = 1
    description: str = ""
    # The policy of the 签收 clock armed beside this (handling) one; None: no sign clock.
    sign_policy_key: str | None = "sign-1wd"
    # 一票否决 categories (群体性事件, 环保事件, 重大安全事故 … in the tenant's own codes): a ticket of
    # one of these goes to the top rung of the ladder the moment its clock starts.
    veto_categories: tuple[str, ...] = ()
    # 退单 window: how long after dispatch the unit may still ask to return the ticket (domain §1.5:
    # 2 working days in Shandong, S8). None: no window of our own (the platform's rules apply).
    return_window: TimeLimit | None = TimeLimit(Duration("working_days", 2))
    # How long the platform may take to review a 退单 request, a 延期 request and a reply (domain
    # §1.3 审核 timer). No published figure: one working day each [I]. None: that review is not timed.
    return_review: TimeLimit | None = TimeLimit(Duration("working_days", 1))
    extension_review: TimeLimit | None = TimeLimit(Duration("working_days", 1))
    reply_review: TimeLimit | None = TimeLimit(Duration("working_days", 1))
    # A review still undecided this long after its deadline is escalated to the supervisor.
    review_escalate_after: Duration = Duration("working_hours", 4)

    def __post_init__(self) -> None:
        if not self.key or self.key.strip() != self.key or " " in self.key:
            raise PolicyError(f"policy key {self.key!r} must be a non-empty slug")
        if self.version < 1:
            raise PolicyError(f"policy {self.key}: version must be >= 1")
        if self.limit.amount <= 0:
            raise PolicyError(f"policy {self.key}: the limit must be longer than zero")
        if (self.warn_at_fraction is None) == (self.warn_before is None):
            raise PolicyError(f"policy {self.key}: give exactly one of warn_at_fraction and warn_before")
        if self.warn_at_fraction is not None and not 0 < self.warn_at_fraction < 1:
            raise PolicyError(f"policy {self.key}: warn_at_fraction must be between 0 and 1")
        if self.count_from not in ("next_day", "same_day"):
            raise PolicyError(f"policy {self.key}: count_from must be 'next_day' or 'same_day'")
        codes = [s.code for s in self.ladder]
        if len(set(codes)) != len(codes):
            raise PolicyError(f"policy {self.key}: ladder step codes must be unique, got {codes}")
        ranks = [_ANCHOR_ORDER[s.anchor] for s in self.ladder]
        if ranks != sorted(ranks):
            raise PolicyError(f"policy {self.key}: ladder steps must be ordered start → warn → breach")
        if any(s.repeat_max for s in self.ladder[:-1]):
            raise PolicyError(f"policy {self.key}: only the last ladder step may repeat")
        if any(not c.strip() for c in self.veto_categories):
            raise PolicyError(f"policy {self.key}: veto categories must be category codes")
        if self.veto_categories and not self.ladder:
            raise PolicyError(f"policy {self.key}: veto categories need a ladder to jump to the top of")
        if self.review_escalate_after.amount <= 0:
            raise PolicyError(f"policy {self.key}: review_escalate_after must be longer than zero")

    def review_limit(self, review: str) -> TimeLimit | None:
        """The limit of the platform's review of a ``return``, ``extension`` or ``reply`` request."""
        limits = {"return": self.return_review, "extension": self.extension_review, "reply": self.reply_review}
        if review not in limits:
            raise PolicyError(f"unknown review {review!r}")
        return limits[review]

    def return_window_end(self, dispatched_at: datetime, calendar: WorkCalendar) -> datetime | None:
        """Until when a unit may request 退单 for a ticket dispatched at ``dispatched_at`` (None: no window)."""
        if self.return_window is None:
            return None
        return self.return_window.after(dispatched_at.astimezone(calendar.tz), calendar)

    def due_after(self, start: datetime, calendar: WorkCalendar) -> datetime:
        return self.limit.after(start, calendar, from_next_day=self.count_from == "next_day")

    def warn_time(self, start: datetime, due: datetime, calendar: WorkCalendar) -> datetime:
        """When to warn for a clock running from ``start`` to ``due``; always within ``[start, due]``."""
        if self.warn_before is not None:
            warn = self.warn_before.before(due, calendar)
        else:
            fraction = self.warn_at_fraction or 0.0
            window = measure(self.limit.kind, start, due, calendar)
            if self.limit.is_working_time and window > _ZERO:
                warn = calendar.add_working_hours(start, window * fraction)
            else:
                warn = calendar.add_natural_hours(start, (due - start) * fraction)
        return min(max(warn, start), due)

    def describe(self) -> str:
        return self.limit.describe()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the policy table and the API; ``from_dict`` reads it back."""
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaPolicy:
        """Validate policy data (e.g. from a tenant's table or the API); raises PolicyError."""
        try:
            return _ADAPTER.validate_python(dict(data))
        except ValidationError as exc:
            raise PolicyError(f"invalid SLA policy: {exc}") from exc


_ADAPTER: TypeAdapter[SlaPolicy] = TypeAdapter(SlaPolicy)


def plan_deadlines(
    policy: SlaPolicy, start: datetime, calendar: WorkCalendar, platform_due_at: datetime | None = None
) -> Deadlines:
    """The deadline and warning time of a clock started at ``start``.

    A deadline set by the 12345 platform wins when it is earlier than the policy's: we never give a
    unit more time than the platform that owns the order does.
    """
    due = policy.due_after(start, calendar)
    source: DueSource = "policy"
    if platform_due_at is not None:
        if platform_due_at.tzinfo is None:
            raise ValueError("platform_due_at must be timezone-aware")
        if platform_due_at < due:
            due, source = platform_due_at.astimezone(calendar.tz), "platform"
    warn = policy.warn_time(start, due, calendar)
    provisional = calendar.is_provisional(start, max(start, due))
    return Deadlines(warn_at=warn, due_at=due, due_source=source, provisional=provisional)


# -- defaults ------------------------------------------------------------------------------------


def _wd(n: int) -> Duration:
    return Duration("working_days", n)


def _h(n: float) -> Duration:
    return Duration("natural_hours", n)


def _wh(n: float) -> Duration:
    return Duration("working_hours", n)


# Domain §5.2 [I]: E1 黄牌 + 催办 at the warning; E2 红牌 + 催办通知 at the deadline; E3 督办单 at
# RED + 1 wd (N1); E4 挂牌督办 at RED + 5 wd (N2, also S12's "+5 wd → 通报批评"); E6 约谈 when the
# 挂牌's own 限期 (taken as 5 wd) has passed too, i.e. RED + 10 wd.
_STANDARD_LADDER: tuple[EscalationStep, ...] = (
    EscalationStep("E1", "warn", "reminder", ("unit_liaison", "unit_deputy_head")),
    EscalationStep("E2", "breach", "overdue_notice", ("unit_deputy_head", "unit_head", "grid_head")),
    EscalationStep("E3", "breach", "supervision_notice", ("unit_head", "sponsor_unit", "supervisor"), _wd(1)),
    EscalationStep(
        "E4",
        "breach",
        "pinned_supervision",
        ("unit_head", "street_leader", "sponsor_leader", "supervisor"),
        _wd(5),
    ),
    EscalationStep("E6", "breach", "interview", ("unit_head", "district_leader", "supervisor"), _wd(10)),
)

DEFAULT_POLICIES: Mapping[str, SlaPolicy] = MappingProxyType(
    {
        p.key: p
        for p in (
            SlaPolicy(
                key="sign-1wd",
                name="签收 1个工作日",
                limit=_wd(1),
                warn_at_fraction=0.5,
                ladder=(
                    EscalationStep("E0", "warn", "reminder", ("unit_liaison",)),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_liaison", "unit_deputy_head")),
                ),
                sign_policy_key=None,
                description=(
                    "签收 within 1 working day (S13), with an SMS reminder to the 联络员 (S11) at half the "
                    "window (domain §5.2 E0); an unsigned order at the deadline is reported to the deputy head."
                ),
            ),
            SlaPolicy(
                key="sign-2wh",
                name="紧急件签收 2个工作小时",
                limit=_wh(2),
                warn_at_fraction=0.5,
                ladder=(
                    EscalationStep("E0", "warn", "reminder", ("unit_liaison",)),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_deputy_head", "unit_head")),
                ),
                sign_policy_key=None,
                description="紧急 orders are handled within a day (S12, S6), so 签收 cannot take one [I].",
            ),
            SlaPolicy(
                key="sign-30m",
                name="特急件签收 30分钟",
                limit=_h(0.5),
                warn_at_fraction=0.5,
                ladder=(
                    EscalationStep("E0", "warn", "reminder", ("unit_liaison", "unit_head")),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_head", "supervisor")),
                ),
                sign_policy_key=None,
                description="特急 orders run on a 2 h limit (S6 [R]): 签收 within a quarter of it, 7×24 [I].",
            ),
            SlaPolicy(
                key="standard-5wd",
                name="一般诉求 5个工作日",
                limit=_wd(5),
                warn_before=_wd(1),
                ladder=_STANDARD_LADDER,
                description=(
                    "求助/投诉 are 5 工作日 in Shandong (S8), a Shanghai street (S10) and another city (S13): the "
                    "commonest published handling limit (domain §1.5). 黄牌 1 工作日 before the deadline (S9); "
                    "ladder per domain §5.2."
                ),
            ),
            SlaPolicy(
                key="complaint-5wd",
                name="投诉 5个工作日",
                limit=_wd(5),
                warn_before=_wd(1),
                ladder=(
                    *_STANDARD_LADDER[:4],
                    EscalationStep("E5", "breach", "circular", ("unit_head", "unit_deputy_head", "supervisor"), _wd(5)),
                    _STANDARD_LADDER[4],
                ),
                description=(
                    "投诉 5 工作日 (S8, S10, S13; the 13 工作日 of S12 is a bureau outlier). Adds S12's written "
                    "通报批评 (E5) at 5 工作日 overdue, next to the 挂牌督办."
                ),
            ),
            SlaPolicy(
                key="consult-3wd",
                name="咨询 3个工作日",
                limit=_wd(3),
                warn_before=_wd(1),
                ladder=_STANDARD_LADDER[:3],
                description=(
                    "咨询 is answered in 1 (S10), 2 (S13) or at most 3 工作日 (S12): 3 is the published upper "
                    "bound. A lighter ladder (催办 → 催办通知 → 督办单) in the spirit of 66号文's 减负 (S2)."
                ),
            ),
            SlaPolicy(
                key="urgent-1wd",
                name="紧急 1个工作日",
                limit=_wd(1),
                warn_at_fraction=0.5,
                ladder=(
                    EscalationStep("E1", "warn", "reminder", ("unit_liaison", "unit_deputy_head")),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_deputy_head", "unit_head", "grid_head")),
                    EscalationStep(
                        "E3", "breach", "supervision_notice", ("unit_head", "street_leader", "supervisor"), _wd(1)
                    ),
                    EscalationStep(
                        "E4",
                        "breach",
                        "pinned_supervision",
                        ("unit_head", "street_leader", "sponsor_leader", "supervisor"),
                        _wd(3),
                    ),
                ),
                description=(
                    "紧急 (S14: 不及时处置事后难以处理): 应急类 the same or next day (S12), 24 h for 水电气热 "
                    "(Beijing, S6 [R]); one working day counted from the next day. Warn at half the working "
                    "time (a 1-wd warn_before would warn at once); the ladder is compressed [I]."
                ),
                sign_policy_key="sign-2wh",
            ),
            SlaPolicy(
                key="critical-2h",
                name="特急 2小时",
                limit=_h(2),
                warn_at_fraction=0.8,
                ladder=(
                    EscalationStep("E1", "warn", "reminder", ("unit_liaison", "unit_deputy_head", "unit_head")),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_head", "grid_head", "supervisor")),
                    EscalationStep(
                        "E3",
                        "breach",
                        "supervision_notice",
                        ("unit_head", "street_leader", "district_leader", "supervisor"),
                        _h(2),
                        repeat_every=_h(2),
                        repeat_max=3,
                    ),
                ),
                description=(
                    "特急 (S14: …并造成严重后果): 2 h for risk to life or property (Beijing, S6 [R]); emergency "
                    "limits are calendar hours, 7×24 (domain §1.5). Warn with 20 % left (domain §5.2 E1); "
                    "督办 repeated every 2 h, at most 3 more times (reference §5.1: loops at the top only)."
                ),
                sign_policy_key="sign-30m",
            ),
            SlaPolicy(
                key="campaign-rectify-3d",
                name="创城点位限时整改 3天",
                limit=_h(72),
                warn_before=_h(24),
                ladder=(
                    EscalationStep("E1", "warn", "reminder", ("unit_liaison", "sponsor_unit")),
                    EscalationStep("E2", "breach", "overdue_notice", ("unit_head", "street_leader", "sponsor_unit")),
                    EscalationStep(
                        "E5", "breach", "circular", ("unit_head", "street_leader", "sponsor_unit", "supervisor"), _h(72)
                    ),
                    EscalationStep(
                        "E4",
                        "breach",
                        "pinned_supervision",
                        ("unit_head", "street_leader", "sponsor_leader", "supervisor"),
                        _h(240),
                    ),
                    EscalationStep(
                        "E6", "breach", "interview", ("unit_head", "sponsor_leader", "district_leader"), _h(360)
                    ),
                ),
                description=(
                    "创城 限时整改 (domain §3.3, S84) runs on the campaign's calendar-day cadence, weekends "
                    "included (S46: 每天日督导、三天一通报、一旬一挂牌、半月一约谈): 3 days to rectify so an "
                    "unfixed point is in the next 通报; 通报 at +3 d, 挂牌 at +10 d, 约谈 at +15 d; "
                    "包抓 sponsors are told from the start (domain §3.3)."
                ),
            ),
        )
    }
)

# 特急/紧急 shorten the time limit (never lengthen it): see resolve_policy.
DEFAULT_PRIORITY_OVERRIDES: Mapping[Priority, str] = MappingProxyType(
    {"critical": "critical-2h", "urgent": "urgent-1wd"}
)


def lookup_policy(key: str, tenant_policies: Mapping[str, SlaPolicy] | None = None) -> SlaPolicy:
    """The tenant's policy with this key, else the built-in default; raises UnknownPolicyError."""
    if tenant_policies is not None and key in tenant_policies:
        return tenant_policies[key]
    try:
        return DEFAULT_POLICIES[key]
    except KeyError:
        raise UnknownPolicyError(key) from None


def resolve_policy(
    key: str,
    priority: Priority,
    started_at: datetime,
    calendar: WorkCalendar,
    tenant_policies: Mapping[str, SlaPolicy] | None = None,
    priority_overrides: Mapping[Priority, str] = DEFAULT_PRIORITY_OVERRIDES,
) -> SlaPolicy:
    """The policy a clock started at ``started_at`` runs on.

    The dispatched ``sla_policy_key`` (category × demand type, chosen by routing), unless the ticket's
    priority maps to a policy that would be due earlier from this start: priority only ever shortens
    the limit. Both are looked up in the tenant's table first.
    """
    base = lookup_policy(key, tenant_policies)
    override_key = priority_overrides.get(priority)
    if override_key is None or override_key == base.key:
        return base
    override = lookup_policy(override_key, tenant_policies)
    if override.due_after(started_at, calendar) < base.due_after(started_at, calendar):
        return override
    return base


# -- escalation's own policy table: (category, priority, demand type) → policy key -----------------

ANY = "*"
PRIORITIES = ("critical", "urgent", "normal")
DEMAND_TYPES = ("consult", "help", "complaint", "report", "suggestion")


@dataclass(frozen=True)
class SlaRule:
    """Which policy a ticket runs on, by category, priority and demand type (``*`` = any).

    Tenant data, versioned per key: the newest version of each (category, priority, demand type)
    counts, a version with ``policy_key`` None withdraws the rule. The clock still snapshots the
    policy's (key, version) at dispatch, so editing a rule never changes open tickets.
    """

    category_code: str
    priority: str
    demand_type: str
    policy_key: str | None
    version: int = 1

    def __post_init__(self) -> None:
        if not self.category_code.strip() or len(self.category_code) > 32:
            raise PolicyError("category_code must be a category code or *")
        if self.priority not in (ANY, *PRIORITIES):
            raise PolicyError(f"priority must be one of {', '.join(PRIORITIES)} or *, got {self.priority!r}")
        if self.demand_type not in (ANY, *DEMAND_TYPES):
            raise PolicyError(f"demand_type must be one of {', '.join(DEMAND_TYPES)} or *, got {self.demand_type!r}")

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """More named fields first; among equals the category, then the demand type, then priority."""
        c, d, p = int(self.category_code != ANY), int(self.demand_type != ANY), int(self.priority != ANY)
        return (c + d + p, c, d, p)


def match_rule(rules: list[SlaRule], category: str, priority: str, demand_type: str | None) -> SlaRule | None:
    """The most specific live rule that fits the ticket, or None (then routing's key applies)."""
    fits = [
        r
        for r in rules
        if r.policy_key is not None
        and r.category_code in (ANY, category)
        and r.priority in (ANY, priority)
        and r.demand_type in (ANY, *((demand_type,) if demand_type else ()))
    ]
    return max(fits, key=lambda r: r.specificity, default=None)
