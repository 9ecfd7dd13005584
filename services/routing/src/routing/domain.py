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

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gridline_contracts.intake import TicketReceivedV1
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1, MatchMethod

from .directory import (
    ANY_AREA,
    GRASS_ROOTS_KINDS,
    LEVEL_NAMES,
    PLACE_UNITS,
    Category,
    Directory,
    DispatchRule,
    Grid,
    Unit,
)
from .gazetteer import AddressMatch
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
