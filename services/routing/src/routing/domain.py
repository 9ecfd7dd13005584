"""Dispatch decisions (派单): a pure function of (ticket, directory version, index, time).

:func:`decide` returns a :class:`Decision`: exactly one event — ``DispatchAssignedV1`` (主办 + 协办,
grid, rule, SLA policy key) or ``DispatchNeedsManualV1`` (a reason code and suggested units for the
dispatcher) — plus a trail of human-readable steps that answers "why did this go to unit X".

The steps:

1. **Place.** A WGS-84 point inside a grid wins (method ``point``, confidence 1.0). Else the address
   through the gazetteer (method ``address``, the gazetteer's confidence) if it reaches
   ``min_confidence``. Else the ticket's ``area_code`` when it names a known grid or the tenant itself
   (method ``area``, confidence 1.0: the caller asserted it). A low-confidence address match is never
   used to dispatch; it is kept as the dispatcher's suggestion.
2. **Rule.** The rules for the category (exact code or ``prefix*``) that are effective at ``now``
   (``effective_from`` ≤ now < ``effective_to``) and whose area is the place or one of its ancestors or
   ``*``. Order: most specific area (grid > community > street > district > ``*``), then highest
   priority, then lowest id. Rules are tried in that order and a rule is skipped, with a line in the
   trail, when its 主办 unit
   - is a ``@street``/``@community`` placeholder the place is too coarse to resolve, or an unknown unit;
   - is a 街道 or 社区 while the category is department-only (66号文: functional-department matters are
     not passed down to 基层) — its 协办 街道/社区 are dropped for the same reason;
   - is in ``exclude_units`` (改派 after an approved 退单).
   Excluded units are also removed from the 协办 list.
3. **Result.** The first rule that survives gives ``DispatchAssignedV1``; otherwise
   ``DispatchNeedsManualV1`` with one of :data:`REASON_CODES`.

Deterministic: nothing is read from the clock or the environment, every collection is iterated in a
sorted order, and the same inputs give an equal Decision.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from gridline_contracts.envelope import EventData
from gridline_contracts.intake import (
    TicketDispatchedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketUnmergedV1,
    Transition,
)
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchReturnReviewedV1,
    MatchMethod,
)

from .directory import (
    ANY_AREA,
    GRASS_ROOTS_KINDS,
    LEVEL_NAMES,
    PLACE_UNITS,
    Category,
    Directory,
    DispatchRule,
    DuplicatePolicy,
    Grid,
    Unit,
)
from .gazetteer import AddressMatch, normalise
from .gridindex import GridIndex

ReasonCode = Literal[
    "tenant_mismatch",
    "unknown_category",
    "no_location",
    "no_match",
    "low_confidence",
    "place_too_coarse",
    "no_rule",
    "only_excluded_units",
]
REASON_CODES: tuple[ReasonCode, ...] = (
    "tenant_mismatch",
    "unknown_category",
    "no_location",
    "no_match",
    "low_confidence",
    "place_too_coarse",
    "no_rule",
    "only_excluded_units",
)
REASON_MESSAGES: dict[ReasonCode, str] = {
    "tenant_mismatch": "工单所属租户与派单目录不一致，请派单员处理",
    "unknown_category": "事项类别不在本地类别目录中，请派单员确认类别后派单",
    "no_location": "工单既无坐标也无地址或区划，无法确定属地，请派单员处理",
    "no_match": "坐标、地址和区划都未能匹配到网格，请派单员确认位置",
    "low_confidence": "地址匹配置信度不足，不自动派单，请派单员确认位置",
    "place_too_coarse": "定位只到较大区域，无法确定属地街道或社区，请派单员确认位置",
    "no_rule": "派单目录中没有适用于该类别和区域的规则，请派单员处理",
    "only_excluded_units": "适用规则的承办单位均已退单，请派单员改派",
}
MAX_SUGGESTIONS = 5


@dataclass(frozen=True)
class TicketToRoute:
    """What routing needs from a ticket. ``location`` is WGS-84 ``(lon, lat)``."""

    ticket_id: uuid.UUID
    tenant: str
    category_code: str
    demand_type: str | None = None
    priority: str = "normal"
    location: tuple[float, float] | None = None
    address: str | None = None
    area_code: str | None = None
    caller_hash: str | None = None  # intake's per-tenant keyed hash of the caller's phone (same caller)

    @classmethod
    def from_event(cls, event: TicketReceivedV1, *, tenant: str) -> TicketToRoute:
        """Build from ``ticket.received``; ``tenant`` comes from the envelope (``ce_tenant``)."""
        return cls(
            ticket_id=event.ticket_id,
            tenant=tenant,
            category_code=event.category_code,
            demand_type=event.demand_type,
            priority=event.priority,
            location=(event.location.lon, event.location.lat) if event.location is not None else None,
            address=event.address,
            area_code=event.area_code,
            caller_hash=event.reporter.caller_hash,
        )


@dataclass(frozen=True)
class Place:
    """Where the ticket is: a grid of the directory, or the whole tenant (``grid`` None, code ``*``)."""

    code: str
    method: MatchMethod
    confidence: float
    grid: Grid | None
    chain: tuple[Grid, ...]  # the grid, its parent, … up to the district (empty for the whole tenant)


@dataclass(frozen=True)
class Decision:
    event: DispatchAssignedV1 | DispatchNeedsManualV1
    trail: tuple[str, ...]
    place: Place | None = None
    rule: DispatchRule | None = None
    address_match: AddressMatch | None = None

    @property
    def assigned(self) -> bool:
        return isinstance(self.event, DispatchAssignedV1)

    @property
    def reason_code(self) -> str | None:
        return self.event.reason_code if isinstance(self.event, DispatchNeedsManualV1) else None


def decide(
    ticket: TicketToRoute,
    directory: Directory,
    index: GridIndex,
    now: datetime,
    *,
    min_confidence: float = 0.8,
    exclude_units: frozenset[str] = frozenset(),
) -> Decision:
    """Route one ticket. Pure: same inputs, same Decision (see the module docstring)."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return _Router(ticket, directory, index, now, min_confidence, exclude_units).run()


_Skip = Literal["excluded", "coarse", "department_only", "unknown_unit"] | None


@dataclass(frozen=True)
class _Candidate:
    rule: DispatchRule
    unit: Unit
    co_units: tuple[str, ...]


class _Router:
    def __init__(
        self,
        ticket: TicketToRoute,
        directory: Directory,
        index: GridIndex,
        now: datetime,
        min_confidence: float,
        exclude_units: frozenset[str],
    ) -> None:
        self.ticket = ticket
        self.directory = directory
        self.index = index
        self.now = now
        self.min_confidence = min_confidence
        self.exclude = exclude_units
        self.trail: list[str] = []
        self.low_match: AddressMatch | None = None
        self.address_match: AddressMatch | None = None

    def note(self, step: str, text: str) -> None:
        self.trail.append(f"{step}: {text}")

    # -- result builders ------------------------------------------------------------------------

    def manual(
        self,
        code: ReasonCode,
        suggestions: Sequence[str] = (),
        place: Place | None = None,
        rule: DispatchRule | None = None,
    ) -> Decision:
        unique = [u for u in dict.fromkeys(suggestions) if u not in self.exclude][:MAX_SUGGESTIONS]
        self.note("result", f"转人工派单 ({code})：{REASON_MESSAGES[code]}")
        if unique:
            self.note("result", f"建议单位：{', '.join(unique)}")
        event = DispatchNeedsManualV1(
            ticket_id=self.ticket.ticket_id,
            reason_code=code,
            reason=REASON_MESSAGES[code],
            suggested_unit_codes=unique,
            decided_at=self.now,
        )
        return Decision(event, tuple(self.trail), place, rule, self.address_match or self.low_match)

    def assigned(self, place: Place, category: Category, chosen: _Candidate) -> Decision:
        rule = chosen.rule
        sla = rule.sla_policy_key or category.sla_policy_key
        co = f"，协办 {', '.join(chosen.co_units)}" if chosen.co_units else ""
        self.note("result", f"派给主办 {chosen.unit.code} {chosen.unit.name}{co}；时限策略 {sla}")
        event = DispatchAssignedV1(
            ticket_id=self.ticket.ticket_id,
            unit_code=chosen.unit.code,
            unit_name=chosen.unit.name,
            co_unit_codes=list(chosen.co_units),
            grid_code=place.grid.code if place.grid is not None else None,
            rule_id=rule.id,
            directory_version=self.directory.version,
            sla_policy_key=sla,
            match_method=place.method,
            confidence=place.confidence,
            decided_at=self.now,
        )
        return Decision(event, tuple(self.trail), place, rule, self.address_match)

    # -- the steps ------------------------------------------------------------------------------

    def run(self) -> Decision:
        t, d = self.ticket, self.directory
        if t.tenant != d.tenant:
            self.note("check", f"工单租户 {t.tenant} 与目录租户 {d.tenant} 不一致")
            return self.manual("tenant_mismatch")
        if self.exclude:
            self.note("check", f"改派：排除已退单单位 {', '.join(sorted(self.exclude))}")
        category = d.category(t.category_code)
        place = self.locate()
        if category is None:
            self.note("category", f"类别 {t.category_code} 不在类别目录（目录版本 {d.version}）中")
            return self.manual("unknown_category", self.place_units(place, department_only=False), place)
        scope = "仅限职能部门" if category.department_only else "可派属地"
        self.note("category", f"类别 {category.code} {category.name}（{scope}，时限策略 {category.sla_policy_key}）")

        if place is None:
            if self.low_match is not None:
                hint = self.place_from_match(self.low_match)
                return self.manual("low_confidence", self.suggest(category, hint), hint)
            given = t.location is not None or bool(t.address) or bool(t.area_code)
            return self.manual("no_match" if given else "no_location", self.suggest(category, None))

        rules = self.applicable_rules(category, place)
        if not rules:
            self.note("rule", f"没有对类别 {category.code} 在 {self.describe(place)} 生效的规则")
            return self.manual("no_rule", self.suggest(category, None), place)

        skips: set[_Skip] = set()
        for rule in rules:
            candidate, skip = self.try_rule(rule, category, place)
            if candidate is not None:
                return self.assigned(place, category, candidate)
            skips.add(skip)
        if "excluded" in skips:
            return self.manual("only_excluded_units", self.suggest(category, place, rules), place)
        if self.low_match is not None:
            hint = self.place_from_match(self.low_match)
            return self.manual("low_confidence", self.suggest(category, hint), hint)
        if "coarse" in skips:
            # The address named a road without a usable number: the 主办 units its grids would get
            # are the likely answers, one of them for sure.
            units: list[str] = []
            for code in self.address_match.entry.grid_codes() if self.address_match else ():
                hint = self.place_from_grid(code, place.method, place.confidence)
                units += self.suggest(category, hint, mains_only=True)
            return self.manual("place_too_coarse", units + self.suggest(category, place, rules), place)
        return self.manual("no_rule", self.suggest(category, place, rules), place)

    def locate(self) -> Place | None:
        t, d = self.ticket, self.directory
        if t.location is not None:
            lon, lat = t.location
            grid = self.index.locate(lon, lat)
            if grid is not None:
                self.note("place", f"坐标 ({lon:.6f}, {lat:.6f}) 落在{self.grid_label(grid)}（置信度 1.00）")
                return Place(grid.code, "point", 1.0, grid, d.ancestors(grid.code) or (grid,))
            self.note("place", f"坐标 ({lon:.6f}, {lat:.6f}) 不在任何网格内")
        if t.address:
            match = d.address_matcher.match(t.address, min_confidence=self.min_confidence)
            if match is None:
                self.note("place", f"地址「{t.address}」在地名库中没有匹配")
            elif match.low:
                self.low_match = match
                self.note(
                    "place",
                    f"地址「{t.address}」低置信度匹配 {match.grid_code}（{match.confidence:.2f} < "
                    f"{self.min_confidence:.2f}）：{match.detail}；不据此派单",
                )
            else:
                grid = d.grid(match.grid_code)
                if grid is not None:
                    self.address_match = match
                    self.note(
                        "place",
                        f"地址「{t.address}」匹配{self.grid_label(grid)}"
                        f"（置信度 {match.confidence:.2f}）：{match.detail}",
                    )
                    return Place(grid.code, "address", match.confidence, grid, d.ancestors(grid.code))
                self.note("place", f"地址匹配到的网格 {match.grid_code} 不在目录中")
        if t.area_code:
            grid = d.grid(t.area_code)
            if grid is not None:
                self.note("place", f"按工单区划 {t.area_code} 定位到{self.grid_label(grid)}")
                return Place(grid.code, "area", 1.0, grid, d.ancestors(grid.code))
            if t.area_code == d.tenant:
                self.note("place", f"工单区划 {t.area_code} 即本租户，只能按全区（*）规则派单")
                return Place(ANY_AREA, "area", 1.0, None, ())
            self.note("place", f"工单区划 {t.area_code} 不是已知网格")
        return None

    def place_from_match(self, match: AddressMatch) -> Place | None:
        return self.place_from_grid(match.grid_code, "address", match.confidence)

    def place_from_grid(self, code: str, method: MatchMethod, confidence: float) -> Place | None:
        grid = self.directory.grid(code)
        if grid is None:
            return None
        return Place(grid.code, method, confidence, grid, self.directory.ancestors(grid.code))

    def applicable_rules(self, category: Category, place: Place | None) -> list[DispatchRule]:
        """Rules for the category, effective now, for the place's area chain, best first."""
        areas = [g.code for g in place.chain] if place is not None else []
        specificity = {code: len(areas) - i for i, code in enumerate(areas)}
        specificity[ANY_AREA] = 0
        found: list[DispatchRule] = []
        for rule in self.directory.rules_for(category.code):
            if place is not None and rule.area_code not in specificity:
                continue
            if not rule.is_effective(self.now):
                if place is not None:
                    self.note("rule", f"规则 {rule.id} 在 {self.now.isoformat()} 不在有效期内，跳过")
                continue
            found.append(rule)
        found.sort(key=lambda r: (-specificity.get(r.area_code, -1), -r.priority, r.id))
        return found

    def try_rule(self, rule: DispatchRule, category: Category, place: Place) -> tuple[_Candidate | None, _Skip]:
        """The candidate the rule gives, or None and why the rule was skipped."""
        where = "全区" if rule.area_code == ANY_AREA else rule.area_code
        head = f"规则 {rule.id}（类别 {rule.category_code}，区域 {where}，优先级 {rule.priority}）"
        dept_only = f"而类别 {category.name} 仅限职能部门办理，不下派基层"
        if category.department_only and rule.main_unit_code in PLACE_UNITS:
            level = LEVEL_NAMES[PLACE_UNITS[rule.main_unit_code]]
            self.note("rule", f"{head} 跳过：主办为属地{level}（{rule.main_unit_code}），{dept_only}")
            return None, "department_only"
        unit, why = self.resolve(rule.main_unit_code, place)
        if unit is None:
            self.note("rule", f"{head} 跳过：{why}")
            return None, "coarse" if self.too_coarse(rule.main_unit_code, place) else "unknown_unit"
        if category.department_only and unit.kind in GRASS_ROOTS_KINDS:
            self.note("rule", f"{head} 跳过：主办 {unit.code} {unit.name} 是{LEVEL_NAMES[unit.kind]}，{dept_only}")
            return None, "department_only"
        if unit.code in self.exclude:
            self.note("rule", f"{head} 跳过：主办 {unit.code} {unit.name} 已退单，改派时排除")
            return None, "excluded"
        co: list[str] = []
        for code in rule.co_unit_codes:
            co_unit, co_why = self.resolve(code, place)
            if co_unit is None:
                self.note("rule", f"{head} 的协办 {code} 略去：{co_why}")
            elif co_unit.code in self.exclude:
                self.note("rule", f"{head} 的协办 {co_unit.code} 已退单，略去")
            elif category.department_only and co_unit.kind in GRASS_ROOTS_KINDS:
                self.note(
                    "rule",
                    f"{head} 的协办 {co_unit.code} 是{LEVEL_NAMES[co_unit.kind]}，仅限职能部门的类别不下派，略去",
                )
            elif co_unit.code != unit.code:
                co.append(co_unit.code)
        self.note("rule", f"{head} 适用：主办 {unit.code} {unit.name}")
        return _Candidate(rule, unit, tuple(dict.fromkeys(co))), None

    @staticmethod
    def place_grid(code: str, place: Place | None) -> Grid | None:
        """The 街道/社区 grid a ``@street``/``@community`` placeholder refers to, if the place has one."""
        if place is None:
            return None
        return next((g for g in place.chain if g.level == PLACE_UNITS[code]), None)

    def too_coarse(self, code: str, place: Place | None) -> bool:
        return code in PLACE_UNITS and self.place_grid(code, place) is None

    def resolve(self, code: str, place: Place | None) -> tuple[Unit | None, str]:
        """A rule's unit code (or ``@street``/``@community``) → the unit, else (None, why)."""
        if code in PLACE_UNITS:
            level = PLACE_UNITS[code]
            grid = self.place_grid(code, place)
            if grid is None:
                return None, f"属地{LEVEL_NAMES[level]}无法确定（定位只到{self.describe(place)}）"
            unit_code = self.directory.place_unit_code(grid)
            unit = self.directory.unit(unit_code)
            if unit is None:
                return None, f"属地{LEVEL_NAMES[level]} {grid.code} 没有对应单位 {unit_code}"
            return unit, ""
        unit = self.directory.unit(code)
        if unit is None:
            return None, f"单位 {code} 不在单位名录中"
        return unit, ""

    def suggest(
        self,
        category: Category,
        place: Place | None,
        rules: Sequence[DispatchRule] | None = None,
        *,
        mains_only: bool = False,
    ) -> list[str]:
        """Units a dispatcher is likely to pick: what the rules would give, then the 属地 units."""
        if rules is None:
            rules = self.applicable_rules_quiet(category, place)
        units: list[str] = []
        for rule in rules:
            for code in (rule.main_unit_code,) if mains_only else (rule.main_unit_code, *rule.co_unit_codes):
                unit, _ = self.resolve(code, place)
                if unit is None or unit.code in self.exclude:
                    continue
                if category.department_only and unit.kind in GRASS_ROOTS_KINDS:
                    continue
                units.append(unit.code)
        if not mains_only:
            units += self.place_units(place, department_only=category.department_only)
        return units

    def applicable_rules_quiet(self, category: Category, place: Place | None) -> list[DispatchRule]:
        trail = self.trail
        self.trail = []
        try:
            return self.applicable_rules(category, place)
        finally:
            self.trail = trail

    def place_units(self, place: Place | None, *, department_only: bool) -> list[str]:
        if place is None or department_only:
            return []
        codes = []
        for grid in place.chain:
            if grid.level in ("community", "street"):
                code = self.directory.place_unit_code(grid)
                if self.directory.unit(code) is not None:
                    codes.append(code)
        return codes

    # -- wording --------------------------------------------------------------------------------

    @staticmethod
    def grid_label(grid: Grid) -> str:
        return f"{LEVEL_NAMES[grid.level]} {grid.code} {grid.name}"

    def describe(self, place: Place | None) -> str:
        if place is None or place.grid is None:
            return "全区"
        return self.grid_label(place.grid)


# ---------------------------------------------------------------------------------------------
# Routing's view of open tickets: duplicates (并单), the manual queue, returns (退单) and 改派

OPEN_STATUSES = frozenset({"routing", "awaiting_manual", "dispatched", "accepted", "return_requested"})
_EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class OpenTicket:
    """A ticket as routing keeps it (store ``ticket``). ``returned_by``: units whose 退单 was approved."""

    ticket: TicketToRoute
    ticket_no: str
    received_at: datetime
    status: str
    unit_code: str | None = None
    parent_ticket_id: uuid.UUID | None = None
    duplicate_count: int = 0
    returned_by: tuple[str, ...] = ()

    @property
    def is_open_root(self) -> bool:
        return self.status in OPEN_STATUSES and self.parent_ticket_id is None


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two WGS-84 ``(lon, lat)`` points, in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Duplicate:
    event: DispatchDuplicateFoundV1
    parent: OpenTicket
    trail: tuple[str, ...]


def find_duplicate(
    ticket: TicketToRoute,
    received_at: datetime,
    candidates: Iterable[OpenTicket],
    policy: DuplicatePolicy,
    now: datetime,
    *,
    address_key: Callable[[str], str] = normalise,
) -> Duplicate | None:
    """一事多报: the open ticket this new one duplicates, or None. Pure and deterministic.

    A candidate qualifies when it is an open root ticket (not itself merged) of the same tenant and
    category, received no later than this one and at most ``window_h`` hours before it, and lies
    within ``radius_m`` of it, or (``same_address``) has the same normalised address. With
    ``same_caller`` the two must also carry the same caller hash (a ticket without one — anonymous,
    or from before intake sent it — then merges with nothing); with ``require_same_address`` a
    point match must also share the normalised address. The nearest wins, then the earliest, then
    the lowest id.
    """
    if not policy.enabled or policy.window_h is None:
        return None
    if policy.same_caller and not ticket.caller_hash:
        return None
    window = timedelta(hours=policy.window_h)
    address = address_key(ticket.address) if ticket.address else ""
    if policy.require_same_address and not address:
        return None
    best: tuple[tuple[float, datetime, str], OpenTicket, float | None, str] | None = None
    for c in candidates:
        t = c.ticket
        if (
            t.ticket_id == ticket.ticket_id
            or t.tenant != ticket.tenant
            or t.category_code != ticket.category_code
            or not c.is_open_root
            or not (received_at - window <= c.received_at <= received_at)
        ):
            continue
        if policy.same_caller and t.caller_hash != ticket.caller_hash:
            continue
        same_address = bool(address) and bool(t.address) and address_key(t.address or "") == address
        if policy.require_same_address and not same_address:
            continue
        dist = distance_m(ticket.location, t.location) if ticket.location and t.location else None
        if dist is not None and policy.radius_m is not None and dist <= policy.radius_m:
            rule = f"radius:{policy.radius_m:g}m/{policy.window_h:g}h"
        elif policy.same_address and same_address:
            rule = f"same_address/{policy.window_h:g}h"
        else:
            continue
        rule += "+caller" if policy.same_caller else ""
        rule += "+address" if policy.require_same_address else ""
        key = (dist if dist is not None else math.inf, c.received_at, str(t.ticket_id))
        if best is None or key < best[0]:
            best = (key, c, dist, rule)
    if best is None:
        return None
    _, parent, dist, rule = best
    where = f"相距 {dist:.0f} 米" if dist is not None else "地址相同"
    where += "，同一来电人" if policy.same_caller else ""
    where += "，地址相同" if policy.require_same_address and dist is not None else ""
    trail = (
        f"duplicate: 与未办结工单 {parent.ticket_no} 同类别（{ticket.category_code}），{where}，"
        f"受理时间相差 {(received_at - parent.received_at).total_seconds() / 3600:.1f} 小时（规则 {rule}）",
        f"result: 并入工单 {parent.ticket_no}，不单独派单",
    )
    event = DispatchDuplicateFoundV1(
        ticket_id=ticket.ticket_id,
        parent_ticket_id=parent.ticket.ticket_id,
        distance_m=round(dist, 1) if dist is not None else None,
        rule=rule,
        decided_at=now,
    )
    return Duplicate(event, parent, trail)


class Refused(Exception):
    """A dispatcher's command that cannot be applied; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str, details: object = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


def manual_assignment(
    ticket: TicketToRoute,
    directory: Directory,
    index: GridIndex,
    now: datetime,
    *,
    unit_code: str,
    co_unit_codes: Sequence[str] = (),
    dispatcher: str,
    sla_policy_key: str | None = None,
    exclude_units: frozenset[str] = frozenset(),
) -> Decision:
    """A dispatcher's 派单 (manual dispatch, reassignment or 改派): checked against the directory."""
    if ticket.tenant != directory.tenant:
        raise Refused("tenant_mismatch", "工单所属租户与派单目录不一致")
    unit = directory.unit(unit_code)
    if unit is None:
        raise Refused("unknown_unit", f"单位 {unit_code} 不在单位名录中", {"unit_code": unit_code})
    if unit_code in exclude_units:
        raise Refused("unit_returned", f"单位 {unit_code} 已退回该工单，不能再派给它", {"unit_code": unit_code})
    category = directory.category(ticket.category_code)
    if category is None and sla_policy_key is None:
        raise Refused(
            "unknown_category", f"类别 {ticket.category_code} 不在类别目录中，请同时指定时限策略 sla_policy_key"
        )
    co: list[str] = []
    for code in dict.fromkeys(co_unit_codes):
        co_unit = directory.unit(code)
        if co_unit is None:
            raise Refused("unknown_unit", f"协办单位 {code} 不在单位名录中", {"unit_code": code})
        if code != unit_code:
            co.append(code)
    if category is not None and category.department_only:
        grass = [u.code for u in (unit, *(directory.unit(c) for c in co)) if u and u.kind in GRASS_ROOTS_KINDS]
        if grass:
            raise Refused(
                "department_only",
                f"类别 {category.code} {category.name} 仅限职能部门办理，不能派给街道或社区 {', '.join(grass)}",
                {"unit_codes": grass},
            )
    grid = index.locate(*ticket.location) if ticket.location is not None else None
    if grid is None and ticket.area_code:
        grid = directory.grid(ticket.area_code)
    sla = sla_policy_key or (category.sla_policy_key if category is not None else "")
    co_text = f"，协办 {', '.join(co)}" if co else ""
    trail = (f"manual: 派单员 {dispatcher} 派给主办 {unit.code} {unit.name}{co_text}；时限策略 {sla}",)
    event = DispatchAssignedV1(
        ticket_id=ticket.ticket_id,
        unit_code=unit.code,
        unit_name=unit.name,
        co_unit_codes=co,
        grid_code=grid.code if grid is not None else None,
        rule_id="manual",
        directory_version=directory.version,
        sla_policy_key=sla,
        match_method="manual",
        confidence=1.0,
        decided_at=now,
    )
    return Decision(event, trail)


# 退单 reason codes as intake accepts them (domain §1.3).
RETURN_REASONS: dict[str, str] = {
    "wrong_territory": "属地不符",
    "not_our_duty": "职能不符",
    "unclear_ownership": "权属不清",
    "legal_procedure": "已进入法定程序",
    "duplicate": "重复件",
}


@dataclass(frozen=True)
class ReturnPolicy:
    review_working_days: int = 1  # 审核时限: close of business of the Nth 工作日 after the request
    timeout_approves: bool = True  # 逾期未审核视为同意: the unit is not left holding a disputed ticket
    max_reroutes: int = 3  # approved returns after which 改派 goes to a dispatcher, never automatic


@dataclass(frozen=True)
class ReturnRequest:
    ticket_id: uuid.UUID
    unit_code: str
    reason_code: str
    basis: str
    requested_at: datetime


@dataclass(frozen=True)
class Verdict:
    approved: bool
    reviewer: str  # "auto:<rule>" or the dispatcher
    reason: str


def auto_review(
    request: ReturnRequest,
    ticket: OpenTicket | None,
    directory: Directory | None,
    index: GridIndex | None,
    now: datetime,
) -> Verdict | None:
    """The automatic rules of 退单审核; None leaves the decision to a dispatcher (within the window).

    - ``auto:not_current_unit`` rejects a request from a unit the ticket is no longer with.
    - ``auto:unknown_reason`` rejects a reason code outside :data:`RETURN_REASONS`.
    - 属地不符 with coordinates: ``auto:location_in_unit_area`` rejects when the point lies in a
      街道/社区 the unit acts for; ``auto:location_outside_unit_area`` approves when the unit is a
      街道/社区 and the point is outside its area.
    - 职能不符: ``auto:directory_names_other_unit`` approves when the current 派单目录 (nothing
      excluded) names another 主办 — the ticket went to this unit by hand or under an older directory.
    Everything else (权属不清, 法定程序, 重复件, no coordinates …) is for a dispatcher.
    """
    if ticket is not None and ticket.unit_code is not None and ticket.unit_code != request.unit_code:
        return Verdict(False, "auto:not_current_unit", f"工单当前承办单位是 {ticket.unit_code}，不是申请单位")
    if request.reason_code not in RETURN_REASONS:
        return Verdict(False, "auto:unknown_reason", f"退单原因 {request.reason_code} 不在规定范围内")
    if ticket is None or directory is None or index is None:
        return None
    t = ticket.ticket
    unit = directory.unit(request.unit_code)
    if request.reason_code == "wrong_territory" and t.location is not None:
        grid = index.locate(*t.location)
        if grid is not None:
            chain = directory.ancestors(grid.code)
            place_units = {directory.place_unit_code(g) for g in chain if g.level in ("street", "community")}
            if request.unit_code in place_units:
                return Verdict(False, "auto:location_in_unit_area", f"坐标位于本单位辖区（{grid.code} {grid.name}）")
            if unit is not None and unit.kind in GRASS_ROOTS_KINDS:
                return Verdict(
                    True, "auto:location_outside_unit_area", f"坐标位于 {grid.code} {grid.name}，不在本单位辖区"
                )
    if request.reason_code == "not_our_duty":
        fresh = decide(t, directory, index, now)
        if isinstance(fresh.event, DispatchAssignedV1) and fresh.event.unit_code != request.unit_code:
            return Verdict(
                True,
                "auto:directory_names_other_unit",
                f"派单目录（版本 {directory.version}）规定主办为 {fresh.event.unit_code} {fresh.event.unit_name}",
            )
    return None


def timeout_verdict(policy: ReturnPolicy) -> Verdict:
    if policy.timeout_approves:
        return Verdict(True, "auto:review_timeout", "审核时限内未审核，视为同意退单")
    return Verdict(False, "auto:review_timeout", "审核时限内未审核，退单不予同意")


def review_event(request: ReturnRequest, verdict: Verdict, now: datetime) -> DispatchReturnReviewedV1:
    return DispatchReturnReviewedV1(
        ticket_id=request.ticket_id,
        unit_code=request.unit_code,
        approved=verdict.approved,
        reviewer=verdict.reviewer,
        reason=verdict.reason,
        decided_at=now,
    )


def reroute(
    ticket_id: uuid.UUID,
    ticket: OpenTicket | None,
    returning_unit: str,
    directory: Directory | None,
    index: GridIndex | None,
    now: datetime,
    policy: ReturnPolicy,
    *,
    min_confidence: float = 0.8,
) -> Decision:
    """改派 after an approved return: :func:`decide` excluding every unit that returned the ticket.

    After ``max_reroutes`` approved returns, or without routing's copy of the ticket or a directory,
    a dispatcher decides (``dispatch.needs_manual``) — never a guess.
    """
    if ticket is None or directory is None or index is None:
        return _manual_only(ticket_id, "reroute_unavailable", "缺少工单或派单目录数据，无法自动改派，请派单员处理", now)
    excluded = frozenset((*ticket.returned_by, returning_unit))
    if len(excluded) > policy.max_reroutes:
        text = f"该工单已被 {len(excluded)} 个单位退回，请派单员改派"
        return _manual_only(ticket_id, "too_many_returns", text, now)
    return decide(ticket.ticket, directory, index, now, min_confidence=min_confidence, exclude_units=excluded)


def _manual_only(ticket_id: uuid.UUID, code: str, text: str, now: datetime) -> Decision:
    event = DispatchNeedsManualV1(ticket_id=ticket_id, reason_code=code, reason=text, decided_at=now)
    return Decision(event, (f"result: 转人工派单 ({code})：{text}",))


# -- rebuilding the read model from intake's history --------------------------------------------

# Intake's status after a transition → where the ticket stands for routing.
ROUTING_STATUS = {
    "received": "routing",
    "awaiting_manual": "awaiting_manual",
    "dispatched": "dispatched",
    "return_requested": "return_requested",
    "accepted": "accepted",
    "extension_requested": "accepted",
    "replied": "accepted",
    "pending_callback": "accepted",
    "merged": "merged",
    "rejected": "closed",
    "direct_closed": "closed",
    "closed": "closed",
    "archived": "closed",
}


@dataclass(frozen=True)
class Projected:
    """Routing's row for a ticket as intake's history alone tells it (``rebuild``)."""

    ticket: TicketToRoute
    ticket_no: str
    received_at: datetime
    updated_at: datetime
    status: str = "routing"
    unit_code: str | None = None
    co_unit_codes: tuple[str, ...] = ()
    grid_code: str | None = None
    parent_ticket_id: uuid.UUID | None = None
    queued_at: datetime | None = None

    @property
    def decided(self) -> bool:
        """Something happened after ``ticket.received``: it must not be routed again."""
        return self.status != "routing"


def project(state: Projected | None, event: EventData, *, tenant: str, at: datetime) -> Projected | None:
    """Fold one of intake's ``ticket.*`` events into the projected row. Pure.

    None while the ticket's ``ticket.received`` has not been seen (it fell out of retention: nothing
    to rebuild from). A repeated ``ticket.received`` changes nothing.
    """
    if isinstance(event, TicketReceivedV1):
        if state is not None:
            return state
        return Projected(
            TicketToRoute.from_event(event, tenant=tenant), event.ticket_no, event.received_at, event.received_at
        )
    if state is None:
        return None
    if isinstance(event, TicketDispatchedV1):
        return replace(
            state,
            status="dispatched",
            unit_code=event.unit_code,
            co_unit_codes=tuple(event.co_unit_codes),
            grid_code=event.grid_code,
            queued_at=None,
            updated_at=at,
        )
    if isinstance(event, Transition):
        status = ROUTING_STATUS.get(event.to_status, state.status)
        parent = state.parent_ticket_id
        if isinstance(event, TicketMergedV1):
            parent = event.parent_ticket_id
        elif isinstance(event, TicketUnmergedV1):
            parent = None
        queued = (state.queued_at or at) if status == "awaiting_manual" else None
        unit = None if status in ("routing", "awaiting_manual", "merged") else state.unit_code
        return replace(state, status=status, parent_ticket_id=parent, queued_at=queued, unit_code=unit, updated_at=at)
    return state
