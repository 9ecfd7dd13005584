"""The per-tenant directory: grids, units, categories, the 派单目录 and the gazetteer.

Everything here is an immutable value. Loaders never raise on bad content: they return what they
could read plus a :class:`ValidationReport` whose ``errors`` must be empty before a directory version
is accepted (``warnings`` are shown to the admin but do not block).

Grid GeoJSON (:func:`load_geojson`)
-----------------------------------
A ``FeatureCollection`` of ``Polygon``/``MultiPolygon`` features in WGS-84 (pass ``crs="gcj02"`` or
``"bd09"`` to convert on import). Feature ``properties``::

    code               str   required; see "codes" below (``feature.id`` is used when absent)
    name               str   required
    level              str   district | street | community | grid | unit_grid
    parent_code        str   required except for a district
    head               str   网格长 / responsible person (optional)
    staff              [str] 网格员 … (optional)
    sponsor_unit_code  str   包抓/包保 unit (optional)
    sponsor_leader     str   包抓 leader (optional)
    responsible_unit_code str the unit that acts for this 街道/社区 (optional; default: the unit whose
                             code equals the grid code)

Codes: a district is a GB/T 2260 six-digit code (valid province prefix, not a province itself); a
street is its district's code + 3 digits (GB/T 10114: 001–599, not 000); a community is its
street's code + 3 digits (not 000); a ``grid`` (基础网格) or ``unit_grid`` (万米单元网格) is 15 digits
starting with its parent's code. Parents: street → district, community → street, grid → community,
unit_grid → community or street. ``grid`` and ``unit_grid`` are two kinds of grid kept side by side
(domain §3.1): siblings are compared only within one level.

Checks: rings closed with ≥ 4 positions, coordinates in range, shapely validity (with
``explain_validity``), non-zero area, codes, duplicates, parent existence and level, a child not
sticking out of its parent, overlaps between siblings (error) and gaps where a parent is not covered by
its children of one level (warning). Areas are in m², computed in a local equirectangular projection
(good to well under 1 % at city scale); anything below ``min_area_m2`` (default 1 m²) is treated as
floating-point noise. Features with geometry or code errors are left out of the returned grids.

Directory bundle (:func:`load_bundle`)
--------------------------------------
One JSON object (a file path or an already-parsed mapping)::

    {
      "format": "gridline.directory-bundle.v1",       # optional; if present must be this
      "tenant": "330106",                              # GB/T 2260 code of the tenant
      "version": 7,                                    # optional; the store assigns versions
      "timezone": "Asia/Shanghai",                     # optional; for date-only rule dates
      "units": [
        {"code": "330106-CGJ", "name": "西湖区城管局", "kind": "department",
         "liaison": "张三", "head": "李四"}            # kind: department|street|community|enterprise
      ],
      "categories": [
        {"code": "200102", "name": "暴露垃圾", "kind": "event",  # kind: demand|component|event
         "department_only": false, "sla_policy_key": "standard-5wd", "scheme": "CJT214",
         "duplicates": {"radius_m": 50, "window_h": 48, "same_address": true,   # optional; false = never merge
                        "same_caller": false, "require_same_address": false}}
      ],
      "rules": [
        {"id": "R0100", "category_code": "200102",       # exact code, or a prefix ending in "*": "2005*"
         "area_code": "*",                               # "*" or a district/street/community/grid code
         "main_unit_code": "@street",                    # a unit code, or @street / @community
         "co_unit_codes": ["330106-CGJ"],
         "priority": 0,                                  # higher wins among equally specific areas
         "effective_from": "2026-01-01",                 # optional; date or datetime, inclusive
         "effective_to": null,                           # optional; exclusive
         "sla_policy_key": null}                         # optional override of the category's key
      ],
      "gazetteer": {
        "strip_prefixes": ["浙江省", "杭州市", "西湖区"],
        "entries": [
          {"id": "road-wensan", "kind": "road", "name": "文三路", "aliases": [],
           "ranges": [{"from": 1, "to": 199, "parity": "odd", "grid_code": "330106001001001"}]},
          {"id": "xq-cuiyuan-1", "kind": "community", "name": "翠苑一区", "aliases": ["翠苑1区"],
           "grid_code": "330106001001002"},
          {"id": "poi-...", "kind": "poi", "name": "...", "grid_code": "..."}
        ]
      },
      "calendar": {                                    # optional: working days for the 退单 review window
        "overrides": {"2027-01-01": false, "2027-02-14": true},  # date → working day? (放假/调休 notice)
        "override_years": [2027],                      # years whose notice is entered in full
        "close_of_business": "17:30"}
    }

Unit placeholders: ``@street`` and ``@community`` in a rule's unit codes mean "the 街道 / 社区 of the
matched place" (its ``responsible_unit_code``, else the unit with the grid's own code), which is how a
派单目录 says 属地街道. Category ``kind``: ``demand`` = a 12345 诉求 class, ``component`` = 数字城管 部件,
``event`` = 数字城管 事件/事项. Category codes are unique per tenant (prefix the kind, as 朝阳 does:
1xxxxx 部件, 2xxxxx 事件).

:func:`assemble` joins a bundle and grids into a :class:`Directory` and cross-checks them (unknown
areas, units and grids; categories without a rule; an empty directory).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import cached_property
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from gridline_calendar import DEFAULT_WORKING_HOURS, CalendarGapError, WorkCalendar, WorkingHours
from gridline_geo.crs import CoordinateError, Crs, to_wgs84, validate

from .gazetteer import ENTRY_KINDS, PARITIES, Gazetteer, GazetteerEntry, HouseNumberRange

BUNDLE_FORMAT = "gridline.directory-bundle.v1"
DEFAULT_TIMEZONE = "Asia/Shanghai"

GridLevel = Literal["district", "street", "community", "grid", "unit_grid"]
UnitKind = Literal["department", "street", "community", "enterprise"]
CategoryKind = Literal["demand", "component", "event"]
Severity = Literal["error", "warning"]

GRID_LEVELS: tuple[str, ...] = get_args(GridLevel)
UNIT_KINDS: tuple[str, ...] = get_args(UnitKind)
CATEGORY_KINDS: tuple[str, ...] = get_args(CategoryKind)
BASE_LEVELS: tuple[GridLevel, ...] = ("district", "street", "community", "grid")
LEVEL_DEPTH: Mapping[str, int] = {"district": 0, "street": 1, "community": 2, "grid": 3, "unit_grid": 3}
PARENT_LEVELS: Mapping[str, tuple[str, ...]] = {
    "district": (),
    "street": ("district",),
    "community": ("street",),
    "grid": ("community",),
    "unit_grid": ("community", "street"),
}
LEVEL_NAMES: Mapping[str, str] = {
    "district": "区县",
    "street": "街道",
    "community": "社区",
    "grid": "基础网格",
    "unit_grid": "单元网格",
}
# Unit kinds that are 基层 (grass-roots): a department-only category never falls to them.
GRASS_ROOTS_KINDS: frozenset[str] = frozenset({"street", "community"})
PLACE_UNIT_STREET = "@street"
PLACE_UNIT_COMMUNITY = "@community"
PLACE_UNITS: Mapping[str, str] = {PLACE_UNIT_STREET: "street", PLACE_UNIT_COMMUNITY: "community"}
ANY_AREA = "*"

# GB/T 2260 province-level prefixes.
PROVINCE_PREFIXES = frozenset(
    {
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    }
)
_EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG = math.pi * _EARTH_RADIUS_M / 180.0


# ---------------------------------------------------------------------------------------------
# Validation report


@dataclass(frozen=True)
class Issue:
    """One finding. ``code`` is stable (for APIs and tests); ``message`` is for people (Chinese)."""

    severity: Severity
    code: str
    message: str
    subject: str | None = None  # a grid/unit/rule code, "A/B" for a pair, or "features[3]"
    area_m2: float | None = None


@dataclass(frozen=True)
class ValidationReport:
    issues: tuple[Issue, ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self, severity: Severity | None = None) -> list[str]:
        return [i.code for i in self.issues if severity is None or i.severity == severity]

    def __add__(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(self.issues + other.issues)


class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, code: str, message: str, subject: str | None = None, area_m2: float | None = None) -> None:
        self.issues.append(Issue("error", code, message, subject, area_m2))

    def warning(self, code: str, message: str, subject: str | None = None, area_m2: float | None = None) -> None:
        self.issues.append(Issue("warning", code, message, subject, area_m2))

    def report(self) -> ValidationReport:
        return ValidationReport(tuple(self.issues))


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class Grid:
    """A grid polygon (WGS-84) in the 区 → 街道 → 社区 → 网格 hierarchy, with its people and 包抓."""

    code: str
    name: str
    level: GridLevel
    parent_code: str | None
    geometry: Any  # shapely Polygon | MultiPolygon, WGS-84 lon/lat
    head: str | None = None
    staff: tuple[str, ...] = ()
    sponsor_unit_code: str | None = None
    sponsor_leader: str | None = None
    responsible_unit_code: str | None = None

    @cached_property
    def area_m2(self) -> float:
        return area_m2(self.geometry)


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: UnitKind
    liaison: str | None = None
    head: str | None = None


@dataclass(frozen=True)
class DuplicatePolicy:
    """When a new ticket is a duplicate (一事多报) of an open one of the same tenant and category.

    Within ``window_h`` hours after the open ticket was received, and either within ``radius_m``
    metres of it or (``same_address``) at the same normalised address. Two optional requirements
    narrow that down: ``same_caller`` (both tickets carry the same caller hash — anonymous reports
    then never merge) and ``require_same_address`` (a point match must also share the address).
    ``None`` fields take the service-wide defaults (:meth:`resolve`); ``enabled=False`` turns
    merging off for a category.
    """

    radius_m: float | None = None
    window_h: float | None = None
    same_address: bool | None = None
    enabled: bool = True
    same_caller: bool | None = None
    require_same_address: bool | None = None

    def resolve(self, default: DuplicatePolicy) -> DuplicatePolicy:
        def pick(mine: bool | None, theirs: bool | None) -> bool | None:
            return mine if mine is not None else theirs

        return DuplicatePolicy(
            radius_m=self.radius_m if self.radius_m is not None else default.radius_m,
            window_h=self.window_h if self.window_h is not None else default.window_h,
            same_address=pick(self.same_address, default.same_address),
            enabled=self.enabled and default.enabled,
            same_caller=pick(self.same_caller, default.same_caller),
            require_same_address=pick(self.require_same_address, default.require_same_address),
        )


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    kind: CategoryKind
    department_only: bool
    sla_policy_key: str
    scheme: str = "local"
    duplicates: DuplicatePolicy = DuplicatePolicy()


@dataclass(frozen=True)
class DispatchRule:
    """One line of the 派单目录: category × area → 主办 + 协办, with priority and effective dates.

    ``effective_from`` is inclusive, ``effective_to`` exclusive; both must be timezone-aware.
    """

    id: str
    category_code: str
    area_code: str
    main_unit_code: str
    co_unit_codes: tuple[str, ...] = ()
    priority: int = 0
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    sla_policy_key: str | None = None

    def __post_init__(self) -> None:
        for when in (self.effective_from, self.effective_to):
            if when is not None and when.utcoffset() is None:
                raise ValueError(f"rule {self.id}: effective dates must be timezone-aware")

    @property
    def is_prefix(self) -> bool:
        return self.category_code.endswith("*")

    def matches_category(self, code: str) -> bool:
        if self.is_prefix:
            return code.startswith(self.category_code[:-1])
        return code == self.category_code

    def is_effective(self, now: datetime) -> bool:
        if self.effective_from is not None and now < self.effective_from:
            return False
        return not (self.effective_to is not None and now >= self.effective_to)


@dataclass(frozen=True)
class Bundle:
    """The non-spatial part of a directory, as read from a bundle JSON."""

    tenant: str
    units: tuple[Unit, ...] = ()
    categories: tuple[Category, ...] = ()
    rules: tuple[DispatchRule, ...] = ()
    gazetteer: tuple[GazetteerEntry, ...] = ()
    gazetteer_prefixes: tuple[str, ...] = ()
    timezone: str = DEFAULT_TIMEZONE
    version: int | None = None
    calendar: WorkCalendar = field(default_factory=WorkCalendar)


@dataclass(frozen=True, eq=False)
class Directory:
    """One immutable version of a tenant's directory. Lookups are dictionaries built once."""

    tenant: str
    version: int
    grids: tuple[Grid, ...]
    units: tuple[Unit, ...]
    categories: tuple[Category, ...]
    rules: tuple[DispatchRule, ...]
    gazetteer: tuple[GazetteerEntry, ...] = ()
    gazetteer_prefixes: tuple[str, ...] = ()
    timezone: str = DEFAULT_TIMEZONE
    calendar: WorkCalendar = field(default_factory=WorkCalendar)  # the tenant's 工作日 (退单 review window)
    _grids: Mapping[str, Grid] = field(init=False, repr=False)
    _units: Mapping[str, Unit] = field(init=False, repr=False)
    _categories: Mapping[str, Category] = field(init=False, repr=False)
    _rules_by_category: dict[str, tuple[DispatchRule, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_grids", {g.code: g for g in self.grids})
        object.__setattr__(self, "_units", {u.code: u for u in self.units})
        object.__setattr__(self, "_categories", {c.code: c for c in self.categories})
        object.__setattr__(self, "_rules_by_category", {})

    def rules_for(self, category_code: str) -> tuple[DispatchRule, ...]:
        """The rules matching a category (exact or prefix), in id order whatever the input order."""
        found = self._rules_by_category.get(category_code)
        if found is None:
            found = tuple(sorted((r for r in self.rules if r.matches_category(category_code)), key=lambda r: r.id))
            self._rules_by_category[category_code] = found
        return found

    def grid(self, code: str) -> Grid | None:
        return self._grids.get(code)

    def unit(self, code: str) -> Unit | None:
        return self._units.get(code)

    def category(self, code: str) -> Category | None:
        return self._categories.get(code)

    def ancestors(self, code: str) -> tuple[Grid, ...]:
        """The grid itself, then its parent, … up to the root (empty if the code is unknown)."""
        chain: list[Grid] = []
        seen: set[str] = set()
        grid = self._grids.get(code)
        while grid is not None and grid.code not in seen:
            chain.append(grid)
            seen.add(grid.code)
            grid = self._grids.get(grid.parent_code) if grid.parent_code else None
        return tuple(chain)

    def place_unit_code(self, grid: Grid) -> str:
        """The unit acting for a 街道/社区 grid: its ``responsible_unit_code`` or its own code."""
        return grid.responsible_unit_code or grid.code

    @cached_property
    def address_matcher(self) -> Gazetteer:
        return Gazetteer.build(
            self.gazetteer,
            parents={g.code: g.parent_code for g in self.grids},
            strip_prefixes=self.gazetteer_prefixes,
        )


# ---------------------------------------------------------------------------------------------
# Geometry helpers


def area_m2(geometry: Any) -> float:
    """Approximate area in m² of a lon/lat geometry (equirectangular at its own centroid latitude)."""
    if geometry is None or geometry.is_empty:
        return 0.0
    lat0 = float(geometry.centroid.y)
    return float(geometry.area) * _M_PER_DEG * _M_PER_DEG * math.cos(math.radians(lat0))


# ---------------------------------------------------------------------------------------------
# Codes


def check_grid_code(code: str, level: str, parent: Grid | None) -> str | None:
    """None if ``code`` has the right shape for ``level`` under ``parent``; else a message."""
    if not code.isdigit() or not code.isascii():
        return f"编码 {code!r} 应全部为数字"
    if level == "district":
        if len(code) != 6:
            return f"区县编码 {code} 应为 6 位 GB/T 2260 代码"
        if code[:2] not in PROVINCE_PREFIXES:
            return f"区县编码 {code} 的省级前缀 {code[:2]} 不是有效的 GB/T 2260 省级代码"
        if code[2:] == "0000":
            return f"{code} 是省级代码，不是区县"
        return None
    expected = {"street": 9, "community": 12, "grid": 15, "unit_grid": 15}[level]
    if len(code) != expected:
        return f"{LEVEL_NAMES[level]}编码 {code} 应为 {expected} 位"
    if code[:6][:2] not in PROVINCE_PREFIXES:
        return f"编码 {code} 的前 6 位不是 GB/T 2260 代码"
    if level == "street" and not 1 <= int(code[6:9]) <= 599:
        return f"街道编码 {code} 的第 7–9 位应在 001–599 (GB/T 10114)"
    if level == "community" and code[9:12] == "000":
        return f"社区编码 {code} 的第 10–12 位不能为 000"
    if parent is not None and not code.startswith(parent.code):
        return f"编码 {code} 应以上级编码 {parent.code} 开头"
    return None


def tenant_prefix(tenant: str) -> str:
    """The code prefix every grid of a tenant shares: 330106 → 330106, 330100 → 3301, 330000 → 33."""
    prefix = tenant
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


def _is_tenant_code(tenant: str) -> bool:
    return len(tenant) == 6 and tenant.isdigit() and tenant.isascii() and tenant[:2] in PROVINCE_PREFIXES


# ---------------------------------------------------------------------------------------------
# GeoJSON


def load_geojson(
    feature_collection: Mapping[str, Any],
    *,
    crs: Crs = "wgs84",
    min_area_m2: float = 1.0,
) -> tuple[list[Grid], ValidationReport]:
    """Parse and check a grid FeatureCollection (see the module docstring). Never raises on content."""
    out = _Collector()
    if not isinstance(feature_collection, Mapping) or feature_collection.get("type") != "FeatureCollection":
        out.error("not_feature_collection", "不是 GeoJSON FeatureCollection")
        return [], out.report()
    features = feature_collection.get("features")
    if not isinstance(features, list):
        out.error("not_feature_collection", "FeatureCollection 缺少 features 数组")
        return [], out.report()

    parsed: list[Grid] = []
    for i, feature in enumerate(features):
        grid = _parse_feature(feature, f"features[{i}]", crs, out)
        if grid is not None:
            parsed.append(grid)

    by_code: dict[str, Grid] = {}
    for grid in parsed:
        if grid.code in by_code:
            out.error("duplicate_code", f"网格编码 {grid.code} 重复", grid.code)
        else:
            by_code[grid.code] = grid
    all_codes = set(by_code) | _codes_of_broken_features(features)

    accepted: list[Grid] = []
    for grid in by_code.values():
        parent = by_code.get(grid.parent_code) if grid.parent_code else None
        if grid.level == "district":
            if grid.parent_code:
                out.error("bad_parent", f"区县 {grid.code} 不应有上级", grid.code)
                continue
        elif not grid.parent_code:
            out.error("missing_parent", f"{LEVEL_NAMES[grid.level]} {grid.code} 缺少 parent_code", grid.code)
            continue
        elif grid.parent_code not in all_codes:
            out.error("unknown_parent", f"{grid.code} 的上级 {grid.parent_code} 不存在", grid.code)
            continue
        elif parent is not None and parent.level not in PARENT_LEVELS[grid.level]:
            allowed = "/".join(LEVEL_NAMES[x] for x in PARENT_LEVELS[grid.level])
            actual = LEVEL_NAMES[parent.level]
            out.error(
                "bad_parent_level",
                f"{LEVEL_NAMES[grid.level]} {grid.code} 的上级 {parent.code} 是{actual}，应为{allowed}",
                grid.code,
            )
            continue
        problem = check_grid_code(grid.code, grid.level, parent)
        if problem is not None:
            out.error("bad_code", problem, grid.code)
            continue
        accepted.append(grid)

    _check_topology(accepted, out, min_area_m2)
    accepted.sort(key=lambda g: g.code)
    return accepted, out.report()


def geojson_to_wgs84(feature_collection: Mapping[str, Any], crs: Crs) -> dict[str, Any]:
    """A copy of a grid FeatureCollection with every position converted from ``crs`` to WGS-84, so that
    what is stored is always WGS-84. Tolerant: anything that is not a position is copied unchanged and
    left for :func:`load_geojson` to report."""

    def convert(node: Any) -> Any:
        if (
            isinstance(node, list)
            and len(node) >= 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node[:2])
        ):
            try:
                return [*to_wgs84(node[0], node[1], crs), *node[2:]]
            except CoordinateError:
                return node
        if isinstance(node, list):
            return [convert(n) for n in node]
        return node

    out = dict(feature_collection)
    features = feature_collection.get("features")
    if crs == "wgs84" or not isinstance(features, list):
        return out
    converted = []
    for f in features:
        geometry = f.get("geometry") if isinstance(f, Mapping) else None
        if isinstance(geometry, Mapping) and "coordinates" in geometry:
            f = {**f, "geometry": {**geometry, "coordinates": convert(geometry["coordinates"])}}
        converted.append(f)
    out["features"] = converted
    return out


def _codes_of_broken_features(features: list[Any]) -> set[str]:
    # A child whose parent exists but was rejected (e.g. invalid geometry) is not "unknown_parent".
    codes: set[str] = set()
    for f in features:
        if isinstance(f, Mapping):
            props = f.get("properties")
            code = props.get("code") if isinstance(props, Mapping) else None
            code = code if code is not None else f.get("id")
            if isinstance(code, str | int) and not isinstance(code, bool):
                codes.add(str(code))
    return codes


def _parse_feature(feature: Any, where: str, crs: Crs, out: _Collector) -> Grid | None:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        out.error("not_feature", f"{where} 不是 GeoJSON Feature", where)
        return None
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        out.error("missing_properties", f"{where} 缺少 properties", where)
        return None
    raw_code = props.get("code", feature.get("id"))
    if isinstance(raw_code, bool) or not isinstance(raw_code, str | int) or str(raw_code) == "":
        out.error("missing_code", f"{where} 缺少网格编码 code", where)
        return None
    code = str(raw_code)
    subject = code
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        out.error("missing_name", f"网格 {code} 缺少名称 name", subject)
        return None
    level = props.get("level")
    if level not in GRID_LEVELS:
        out.error("bad_level", f"网格 {code} 的层级 {level!r} 无效，应为 {', '.join(GRID_LEVELS)} 之一", subject)
        return None
    parent_code = props.get("parent_code")
    if parent_code is not None and not isinstance(parent_code, str | int):
        out.error("bad_parent", f"网格 {code} 的 parent_code 无效", subject)
        return None
    staff = props.get("staff") or []
    if not isinstance(staff, list) or not all(isinstance(s, str) for s in staff):
        out.error("bad_staff", f"网格 {code} 的 staff 应为字符串数组", subject)
        return None
    geometry = _parse_geometry(feature.get("geometry"), code, crs, out)
    if geometry is None:
        return None
    return Grid(
        code=code,
        name=name.strip(),
        level=level,
        parent_code=str(parent_code) if parent_code is not None and str(parent_code) else None,
        geometry=geometry,
        head=_opt_str(props.get("head")),
        staff=tuple(staff),
        sponsor_unit_code=_opt_str(props.get("sponsor_unit_code")),
        sponsor_leader=_opt_str(props.get("sponsor_leader")),
        responsible_unit_code=_opt_str(props.get("responsible_unit_code")),
    )


def _opt_str(value: Any) -> str | None:
    return str(value) if value is not None and str(value) != "" else None


def _parse_geometry(geom: Any, code: str, crs: Crs, out: _Collector) -> Any:
    if not isinstance(geom, Mapping):
        out.error("missing_geometry", f"网格 {code} 缺少几何 geometry", code)
        return None
    kind, coords = geom.get("type"), geom.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon" and isinstance(coords, list):
        polygons = coords
    else:
        out.error("bad_geometry_type", f"网格 {code} 的几何类型 {kind!r} 不是 Polygon/MultiPolygon", code)
        return None
    shapes = []
    for p, rings in enumerate(polygons):
        if not isinstance(rings, list) or not rings:
            out.error("bad_coordinates", f"网格 {code} 第 {p + 1} 个多边形没有坐标环", code)
            return None
        parsed_rings = []
        for r, ring in enumerate(rings):
            parsed = _parse_ring(ring, code, f"第 {p + 1} 个多边形第 {r + 1} 个环", crs, out)
            if parsed is None:
                return None
            parsed_rings.append(parsed)
        shapes.append(Polygon(parsed_rings[0], parsed_rings[1:]))
    geometry = shapes[0] if kind == "Polygon" else MultiPolygon(shapes)
    if not shapely.is_valid(geometry):
        out.error("invalid_geometry", f"网格 {code} 几何无效：{explain_validity(geometry)}", code)
        return None
    if geometry.is_empty or geometry.area <= 0:
        out.error("empty_geometry", f"网格 {code} 面积为零", code)
        return None
    return geometry


def _parse_ring(ring: Any, code: str, where: str, crs: Crs, out: _Collector) -> list[tuple[float, float]] | None:
    if not isinstance(ring, list) or len(ring) < 4:
        out.error("ring_too_short", f"网格 {code} {where}至少需要 4 个坐标（首尾相同）", code)
        return None
    points: list[tuple[float, float]] = []
    for pos in ring:
        if (
            not isinstance(pos, list | tuple)
            or len(pos) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos[:2])
        ):
            out.error("bad_coordinates", f"网格 {code} {where}含无效坐标 {pos!r}", code)
            return None
        try:
            validate(pos[0], pos[1])
        except CoordinateError as exc:
            out.error("bad_coordinates", f"网格 {code} {where}：{exc.message}", code)
            return None
        points.append((float(pos[0]), float(pos[1])))
    if points[0] != points[-1]:
        out.error("ring_not_closed", f"网格 {code} {where}未闭合（首尾坐标不同）", code)
        return None
    if crs != "wgs84":
        points = [to_wgs84(x, y, crs) for x, y in points]
    return points


def _check_topology(grids: list[Grid], out: _Collector, min_area_m2: float) -> None:
    by_code = {g.code: g for g in grids}
    groups: dict[tuple[str | None, str], list[Grid]] = {}
    for g in grids:
        groups.setdefault((g.parent_code, g.level), []).append(g)

    for (parent_code, level), siblings in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        siblings.sort(key=lambda g: g.code)
        parent = by_code.get(parent_code) if parent_code else None
        if parent is not None:
            for child in siblings:
                outside = area_m2(child.geometry.difference(parent.geometry))
                if outside > min_area_m2:
                    out.error(
                        "outside_parent",
                        f"网格 {child.code} 有约 {outside:.0f} m² 超出上级 {parent.code}",
                        child.code,
                        round(outside, 1),
                    )
        geoms = [g.geometry for g in siblings]
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for i, j in sorted({(int(a), int(b)) for a, b in zip(left, right, strict=True) if a < b}):
            shared = area_m2(shapely.intersection(geoms[i], geoms[j]))
            if shared > min_area_m2:
                a, b = siblings[i].code, siblings[j].code
                out.error(
                    "overlap",
                    f"同级{LEVEL_NAMES[level]} {a} 与 {b} 重叠约 {shared:.0f} m²",
                    f"{a}/{b}",
                    round(shared, 1),
                )
        if parent is not None:
            uncovered = area_m2(parent.geometry.difference(shapely.union_all(geoms)))
            if uncovered > min_area_m2:
                out.warning(
                    "gap",
                    f"上级 {parent.code} 有约 {uncovered:.0f} m² 未被其下{LEVEL_NAMES[level]}覆盖",
                    parent.code,
                    round(uncovered, 1),
                )


# ---------------------------------------------------------------------------------------------
# Bundle


def load_bundle(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Bundle, ValidationReport]:
    """Read a directory bundle (a JSON file path, or an already-parsed mapping) and check it.

    Never raises on content or an unreadable file: the report says what is wrong.
    """
    out = _Collector()
    raw: Any
    if isinstance(source, Mapping):
        raw = source
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                raw = json.load(fh)
        except OSError as exc:
            out.error("unreadable", f"无法读取目录文件 {os.fspath(source)}：{exc.strerror or exc}")
            return Bundle(tenant=""), out.report()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.error("bad_json", f"目录文件不是有效的 JSON：{exc}")
            return Bundle(tenant=""), out.report()
    if not isinstance(raw, Mapping):
        out.error("bad_bundle", "目录应为 JSON 对象")
        return Bundle(tenant=""), out.report()

    fmt = raw.get("format")
    if fmt is not None and fmt != BUNDLE_FORMAT:
        out.error("bad_format", f"不支持的目录格式 {fmt!r}，应为 {BUNDLE_FORMAT}")
    tenant = str(raw.get("tenant") or "")
    if not _is_tenant_code(tenant):
        out.error("bad_tenant", f"租户编码 {tenant!r} 应为 6 位 GB/T 2260 代码")
    version = raw.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        out.error("bad_version", f"版本号 {version!r} 应为正整数")
        version = None
    tz_name = str(raw.get("timezone") or DEFAULT_TIMEZONE)
    tz = _timezone(tz_name, out)

    units = _parse_units(_list(raw, "units", out), out)
    categories = _parse_categories(_list(raw, "categories", out), out)
    rules = _parse_rules(_list(raw, "rules", out), tz, out)
    gaz_raw = raw.get("gazetteer") or {}
    if not isinstance(gaz_raw, Mapping):
        out.error("bad_gazetteer", "gazetteer 应为对象 {strip_prefixes, entries}")
        gaz_raw = {}
    entries = _parse_gazetteer(_list(gaz_raw, "entries", out), out)
    prefixes_raw = gaz_raw.get("strip_prefixes") or []
    prefixes = tuple(str(p) for p in prefixes_raw) if isinstance(prefixes_raw, list) else ()

    calendar = _parse_calendar(raw.get("calendar"), tz_name, out)
    _check_bundle_refs(units, categories, rules, out)
    bundle = Bundle(
        tenant=tenant,
        units=units,
        categories=categories,
        rules=rules,
        gazetteer=entries,
        gazetteer_prefixes=prefixes,
        timezone=tz_name,
        version=version,
        calendar=calendar,
    )
    return bundle, out.report()


def _parse_calendar(raw: Any, tz_name: str, out: _Collector) -> WorkCalendar:
    """The bundle's ``calendar`` block: the tenant's overrides for the shared working calendar, and
    its close of business (the 退单 review window ends then on its last working day)."""
    tz = tz_name if tz_name in _valid_zones(tz_name) else DEFAULT_TIMEZONE
    if raw is None:
        return WorkCalendar(tz)
    if not isinstance(raw, Mapping):
        out.error("bad_calendar", "calendar 应为对象 {overrides, override_years, close_of_business}")
        return WorkCalendar(tz)
    overrides: dict[date, bool] = {}
    raw_overrides = raw.get("overrides") or {}
    if not isinstance(raw_overrides, Mapping):
        out.error("bad_calendar", "calendar.overrides 应为 {日期: 是否工作日} 对象")
        raw_overrides = {}
    for key, value in raw_overrides.items():
        try:
            day = date.fromisoformat(str(key))
        except ValueError:
            out.error("bad_calendar", f"calendar.overrides 的日期 {key!r} 应为 YYYY-MM-DD", str(key))
            continue
        if not isinstance(value, bool):
            out.error("bad_calendar", f"calendar.overrides[{key}] 应为 true（工作日）或 false（休息日）", str(key))
            continue
        overrides[day] = value
    years_raw = raw.get("override_years") or []
    years: set[int] = set()
    if not isinstance(years_raw, list) or not all(
        isinstance(y, int) and not isinstance(y, bool) and 2000 <= y <= 2100 for y in years_raw
    ):
        out.error("bad_calendar", "calendar.override_years 应为年份列表，如 [2027]")
    else:
        years = set(years_raw)
    hours = DEFAULT_WORKING_HOURS
    close_raw = raw.get("close_of_business")
    if close_raw is not None:
        try:
            hours = _hours_closing_at(time.fromisoformat(str(close_raw)))
        except ValueError:
            first = DEFAULT_WORKING_HOURS[0][0].strftime("%H:%M")
            out.error("bad_calendar", f"calendar.close_of_business {close_raw!r} 应为晚于 {first} 的 HH:MM")
    return WorkCalendar(tz, overrides, hours, override_years=years)


def _hours_closing_at(close: time) -> WorkingHours:
    """The default working-hour windows, the day's last one ending at ``close``: the bundle sets only
    close of business, which is all the review window uses. ValueError if no window starts before it."""
    windows = [(start, min(end, close)) for start, end in DEFAULT_WORKING_HOURS if start < close]
    if not windows:
        raise ValueError(f"no working-hour window starts before {close}")
    windows[-1] = (windows[-1][0], close)
    return tuple(windows)


def calendar_gap_reason(gap: CalendarGapError) -> str:
    """Why a review window has no deadline, worded for whoever maintains the tenant's directory bundle."""
    day, year = gap.day.isoformat(), gap.day.year
    return (
        f"{day} 缺少工作日历数据：chinese_calendar 未收录 {year} 年，目录中也没有该日的覆盖；"
        f"请在目录 calendar.overrides 中录入 {year} 年放假安排并把 {year} 列入 calendar.override_years"
    )


def _valid_zones(name: str) -> set[str]:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return set()
    return {name}


def _list(raw: Mapping[str, Any], key: str, out: _Collector) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        out.error("bad_bundle", f"{key} 应为数组")
        return []
    return value


def _timezone(name: str, out: _Collector) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name == DEFAULT_TIMEZONE:
            # No tz database in the image: China has had no DST since 1991, so +08:00 is exact.
            return timezone(timedelta(hours=8), DEFAULT_TIMEZONE)
        out.error("bad_timezone", f"未知时区 {name!r}")
        return UTC


def _req_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _parse_units(items: list[Any], out: _Collector) -> tuple[Unit, ...]:
    units: dict[str, Unit] = {}
    for i, item in enumerate(items):
        where = f"units[{i}]"
        if not isinstance(item, Mapping):
            out.error("bad_unit", f"{where} 应为对象", where)
            continue
        code, name, kind = _req_str(item, "code"), _req_str(item, "name"), item.get("kind")
        if code is None or name is None:
            out.error("bad_unit", f"{where} 缺少 code 或 name", where)
            continue
        if code.startswith("@") or code == ANY_AREA:
            out.error("bad_unit", f"单位编码 {code} 不能以 @ 开头或为 *", code)
            continue
        if kind not in UNIT_KINDS:
            out.error("bad_unit", f"单位 {code} 的类型 {kind!r} 无效，应为 {', '.join(UNIT_KINDS)} 之一", code)
            continue
        if code in units:
            out.error("duplicate_unit", f"单位编码 {code} 重复", code)
            continue
        units[code] = Unit(code, name, kind, _opt_str(item.get("liaison")), _opt_str(item.get("head")))
    return tuple(sorted(units.values(), key=lambda u: u.code))


def _parse_categories(items: list[Any], out: _Collector) -> tuple[Category, ...]:
    categories: dict[str, Category] = {}
    for i, item in enumerate(items):
        where = f"categories[{i}]"
        if not isinstance(item, Mapping):
            out.error("bad_category", f"{where} 应为对象", where)
            continue
        code, name, kind = _req_str(item, "code"), _req_str(item, "name"), item.get("kind")
        sla = _req_str(item, "sla_policy_key")
        dept_only = item.get("department_only", False)
        if code is None or name is None or sla is None:
            out.error("bad_category", f"{where} 缺少 code、name 或 sla_policy_key", code or where)
            continue
        if "*" in code:
            out.error("bad_category", f"类别编码 {code} 不能含 *", code)
            continue
        if kind not in CATEGORY_KINDS:
            out.error("bad_category", f"类别 {code} 的类型 {kind!r} 无效，应为 {', '.join(CATEGORY_KINDS)} 之一", code)
            continue
        if not isinstance(dept_only, bool):
            out.error("bad_category", f"类别 {code} 的 department_only 应为 true/false", code)
            continue
        if code in categories:
            out.error("duplicate_category", f"类别编码 {code} 重复", code)
            continue
        scheme = _req_str(item, "scheme") or "local"
        duplicates = _parse_duplicates(item.get("duplicates"), code, out)
        if duplicates is None:
            continue
        categories[code] = Category(code, name, kind, dept_only, sla, scheme, duplicates)
    return tuple(sorted(categories.values(), key=lambda c: c.code))


def _parse_duplicates(raw: Any, code: str, out: _Collector) -> DuplicatePolicy | None:
    if raw is None or raw is True:
        return DuplicatePolicy()
    if raw is False:
        return DuplicatePolicy(enabled=False)
    if not isinstance(raw, Mapping):
        out.error("bad_category", f"类别 {code} 的 duplicates 应为对象或 true/false", code)
        return None
    numbers: dict[str, float] = {}
    for key, upper in (("radius_m", 10_000.0), ("window_h", 24.0 * 90)):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= upper:
            out.error("bad_category", f"类别 {code} 的 duplicates.{key} 应为 0–{upper:g} 之间的数", code)
            return None
        numbers[key] = float(value)
    flags: dict[str, bool | None] = {}
    for key in ("same_address", "same_caller", "require_same_address"):
        value = raw.get(key)
        if value is not None and not isinstance(value, bool):
            out.error("bad_category", f"类别 {code} 的 duplicates.{key} 应为 true/false", code)
            return None
        flags[key] = value
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        out.error("bad_category", f"类别 {code} 的 duplicates.enabled 应为 true/false", code)
        return None
    return DuplicatePolicy(
        numbers.get("radius_m"),
        numbers.get("window_h"),
        flags["same_address"],
        enabled,
        same_caller=flags["same_caller"],
        require_same_address=flags["require_same_address"],
    )


def _parse_when(value: Any, tz: tzinfo, rule_id: str, key: str, out: _Collector) -> tuple[bool, datetime | None]:
    if value is None or value == "":
        return True, None
    if not isinstance(value, str):
        out.error("bad_rule", f"规则 {rule_id} 的 {key} 应为日期字符串", rule_id)
        return False, None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return True, datetime(d.year, d.month, d.day, tzinfo=tz)
        when = datetime.fromisoformat(value)
    except ValueError:
        out.error("bad_rule", f"规则 {rule_id} 的 {key} {value!r} 不是 ISO 8601 日期", rule_id)
        return False, None
    return True, when if when.utcoffset() is not None else when.replace(tzinfo=tz)


_AREA_CODE = re.compile(r"^\d{6}(\d{3}){0,3}$")


def _parse_rules(items: list[Any], tz: tzinfo, out: _Collector) -> tuple[DispatchRule, ...]:
    rules: dict[str, DispatchRule] = {}
    for i, item in enumerate(items):
        where = f"rules[{i}]"
        if not isinstance(item, Mapping):
            out.error("bad_rule", f"{where} 应为对象", where)
            continue
        rule_id = _req_str(item, "id")
        category, area = _req_str(item, "category_code"), _req_str(item, "area_code")
        main = _req_str(item, "main_unit_code")
        if rule_id is None or category is None or area is None or main is None:
            out.error("bad_rule", f"{where} 缺少 id、category_code、area_code 或 main_unit_code", rule_id or where)
            continue
        if rule_id in rules:
            out.error("duplicate_rule", f"规则编号 {rule_id} 重复", rule_id)
            continue
        if "*" in category[:-1] or category == "*":
            out.error("bad_rule", f"规则 {rule_id} 的类别 {category!r} 无效（前缀匹配写作 2005*）", rule_id)
            continue
        if area != ANY_AREA and not _AREA_CODE.match(area):
            out.error("bad_rule", f"规则 {rule_id} 的区域 {area!r} 应为 * 或 6/9/12/15 位区划/网格编码", rule_id)
            continue
        co_raw = item.get("co_unit_codes") or []
        if not isinstance(co_raw, list) or not all(isinstance(c, str) and c for c in co_raw):
            out.error("bad_rule", f"规则 {rule_id} 的 co_unit_codes 应为字符串数组", rule_id)
            continue
        priority = item.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            out.error("bad_rule", f"规则 {rule_id} 的 priority 应为整数", rule_id)
            continue
        ok_from, eff_from = _parse_when(item.get("effective_from"), tz, rule_id, "effective_from", out)
        ok_to, eff_to = _parse_when(item.get("effective_to"), tz, rule_id, "effective_to", out)
        if not (ok_from and ok_to):
            continue
        if eff_from is not None and eff_to is not None and eff_to <= eff_from:
            out.error("bad_rule", f"规则 {rule_id} 的失效时间不晚于生效时间", rule_id)
            continue
        co = tuple(dict.fromkeys(c for c in co_raw if c != main))
        rules[rule_id] = DispatchRule(
            id=rule_id,
            category_code=category,
            area_code=area,
            main_unit_code=main,
            co_unit_codes=co,
            priority=priority,
            effective_from=eff_from,
            effective_to=eff_to,
            sla_policy_key=_req_str(item, "sla_policy_key"),
        )
    return tuple(sorted(rules.values(), key=lambda r: r.id))


def _parse_gazetteer(items: list[Any], out: _Collector) -> tuple[GazetteerEntry, ...]:
    entries: dict[str, GazetteerEntry] = {}
    for i, item in enumerate(items):
        where = f"gazetteer.entries[{i}]"
        if not isinstance(item, Mapping):
            out.error("bad_gazetteer", f"{where} 应为对象", where)
            continue
        entry_id, name, kind = _req_str(item, "id"), _req_str(item, "name"), item.get("kind")
        if entry_id is None or name is None or kind not in ENTRY_KINDS:
            kinds = ", ".join(ENTRY_KINDS)
            out.error("bad_gazetteer", f"{where} 缺少 id、name，或 kind 不是 {kinds}", entry_id or where)
            continue
        if entry_id in entries:
            out.error("duplicate_gazetteer_entry", f"地名条目 {entry_id} 重复", entry_id)
            continue
        aliases = item.get("aliases") or []
        ranges_raw = item.get("ranges") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            out.error("bad_gazetteer", f"地名条目 {entry_id} 的 aliases 应为字符串数组", entry_id)
            continue
        if not isinstance(ranges_raw, list):
            out.error("bad_gazetteer", f"地名条目 {entry_id} 的 ranges 应为数组", entry_id)
            continue
        ranges: list[HouseNumberRange] = []
        for r in ranges_raw:
            start = r.get("from") if isinstance(r, Mapping) else None
            end = r.get("to") if isinstance(r, Mapping) else None
            grid = _req_str(r, "grid_code") if isinstance(r, Mapping) else None
            parity = r.get("parity", "all") if isinstance(r, Mapping) else None
            if (
                not isinstance(start, int)
                or not isinstance(end, int)
                or grid is None
                or parity not in PARITIES
                or start > end
                or start < 0
            ):
                out.error("bad_gazetteer", f"地名条目 {entry_id} 的门牌范围 {r!r} 无效", entry_id)
                ranges = []
                break
            ranges.append(HouseNumberRange(start, end, grid, parity))
        else:
            try:
                entries[entry_id] = GazetteerEntry(
                    id=entry_id,
                    kind=kind,
                    name=name,
                    grid_code=_req_str(item, "grid_code"),
                    aliases=tuple(aliases),
                    ranges=tuple(ranges),
                )
            except ValueError as exc:
                out.error("bad_gazetteer", f"地名条目 {entry_id}：{exc}", entry_id)
    return tuple(sorted(entries.values(), key=lambda e: e.id))


def _check_bundle_refs(
    units: Sequence[Unit], categories: Sequence[Category], rules: Sequence[DispatchRule], out: _Collector
) -> None:
    unit_by_code = {u.code: u for u in units}
    cats = {c.code: c for c in categories}
    for rule in rules:
        matched = [c for c in categories if rule.matches_category(c.code)]
        if not rule.is_prefix and rule.category_code not in cats:
            out.error("unknown_category", f"规则 {rule.id} 引用了不存在的类别 {rule.category_code}", rule.id)
        elif rule.is_prefix and not matched:
            message = f"规则 {rule.id} 的类别前缀 {rule.category_code} 不匹配任何类别"
            out.warning("prefix_matches_nothing", message, rule.id)
        for code in (rule.main_unit_code, *rule.co_unit_codes):
            if code.startswith("@"):
                if code not in PLACE_UNITS:
                    message = f"规则 {rule.id} 的单位占位符 {code} 无效，应为 @street 或 @community"
                    out.error("unknown_unit", message, rule.id)
            elif code not in unit_by_code:
                out.error("unknown_unit", f"规则 {rule.id} 引用了不存在的单位 {code}", rule.id)
        main = rule.main_unit_code
        grass_roots = main in PLACE_UNITS or (main in unit_by_code and unit_by_code[main].kind in GRASS_ROOTS_KINDS)
        if grass_roots:
            for cat in matched:
                if not cat.department_only:
                    continue
                if rule.is_prefix:
                    # A prefix rule may rightly cover both kinds; dispatch skips it for this category.
                    message = f"前缀规则 {rule.id} 的主办 {main} 是街道/社区，对仅限职能部门的类别 {cat.code} 不适用"
                    out.warning("department_only_rule_skipped", message, rule.id)
                else:
                    message = f"规则 {rule.id} 把仅限职能部门的类别 {cat.code} {cat.name} 派给街道/社区 {main}"
                    out.error("department_only_to_grass_roots", message, rule.id)


# ---------------------------------------------------------------------------------------------
# Assembly


def assemble(
    bundle: Bundle, grids: Iterable[Grid], *, version: int | None = None
) -> tuple[Directory, ValidationReport]:
    """Join a bundle and its grids into a :class:`Directory` and cross-check references.

    ``version`` defaults to the bundle's version, else 1 (the store normally assigns it).
    """
    grid_list = tuple(sorted(grids, key=lambda g: g.code))
    directory = Directory(
        tenant=bundle.tenant,
        version=version if version is not None else (bundle.version or 1),
        grids=grid_list,
        units=bundle.units,
        categories=bundle.categories,
        rules=bundle.rules,
        gazetteer=bundle.gazetteer,
        gazetteer_prefixes=bundle.gazetteer_prefixes,
        timezone=bundle.timezone,
        calendar=bundle.calendar,
    )
    return directory, check_directory(directory)


def check_directory(directory: Directory) -> ValidationReport:
    """Cross-reference checks over a whole directory version (an empty one is an error)."""
    out = _Collector()
    if not directory.grids:
        out.error("no_grids", "目录中没有网格")
    if not directory.units:
        out.error("no_units", "目录中没有单位")
    if not directory.categories:
        out.error("no_categories", "目录中没有事项类别")
    if not directory.rules:
        out.error("no_rules", "派单目录为空（没有派单规则）")
    prefix = tenant_prefix(directory.tenant)
    for g in directory.grids:
        if not g.code.startswith(prefix):
            out.error("grid_outside_tenant", f"网格 {g.code} 不属于租户 {directory.tenant}", g.code)
        if g.sponsor_unit_code and directory.unit(g.sponsor_unit_code) is None:
            message = f"网格 {g.code} 的包抓单位 {g.sponsor_unit_code} 不在单位名录中"
            out.warning("unknown_sponsor_unit", message, g.code)
        if g.responsible_unit_code and directory.unit(g.responsible_unit_code) is None:
            out.error("unknown_unit", f"网格 {g.code} 的责任单位 {g.responsible_unit_code} 不存在", g.code)
        if g.level in PLACE_UNITS.values() and directory.unit(directory.place_unit_code(g)) is None:
            uses = [r.id for r in directory.rules if g.level in _placeholder_levels(r)]
            if uses:
                out.warning(
                    "no_unit_for_area",
                    f"{LEVEL_NAMES[g.level]} {g.code} 没有对应单位，规则 {', '.join(uses[:3])} 的属地单位在此无法确定",
                    g.code,
                )
    for rule in directory.rules:
        if rule.area_code != ANY_AREA and directory.grid(rule.area_code) is None:
            out.error("unknown_area", f"规则 {rule.id} 的区域 {rule.area_code} 不是已知网格", rule.id)
    for entry in directory.gazetteer:
        for code in entry.grid_codes():
            if directory.grid(code) is None:
                out.error("unknown_grid", f"地名条目 {entry.id} 指向不存在的网格 {code}", entry.id)
    for cat in directory.categories:
        if not any(r.matches_category(cat.code) for r in directory.rules):
            out.warning("category_without_rule", f"类别 {cat.code} {cat.name} 没有派单规则，将全部转人工", cat.code)
    return out.report()


def _placeholder_levels(rule: DispatchRule) -> set[str]:
    return {PLACE_UNITS[c] for c in (rule.main_unit_code, *rule.co_unit_codes) if c in PLACE_UNITS}
