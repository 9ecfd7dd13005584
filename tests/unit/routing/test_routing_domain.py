"""Dispatch decisions on the demo city (杭州市西湖区, demo/city): plain asserts, no fakes."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gridline_contracts.intake import GeoPoint, ReporterRef, TicketReceivedV1
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from gridline_geo.crs import from_wgs84, to_wgs84
from routing import domain
from routing.directory import Directory, DispatchRule
from routing.domain import REASON_CODES, Decision, TicketToRoute, decide
from routing.gridindex import GridIndex

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=CST)
TICKET_ID = uuid.UUID("6f1c2a8e-0000-4000-8000-000000012345")

# Points inside demo base grids (WGS-84).
IN_DEJIA_1 = (120.105, 30.29)  # 文新街道 / 德加社区 / 德加第1网格 330106005001001
IN_CUIYUAN_1_2 = (120.127, 30.29)  # 翠苑街道 / 翠苑一区社区 / 第2网格 330106004001002
IN_GUDANGWAN_4 = (120.157, 30.28)  # 古荡街道 / 古荡湾社区 / 第4网格 330106006002004
OUTSIDE = (121.5, 31.2)

CGJ, SCJGJ, SCJGJ_WX, ZJJ, STHJ, SW = (f"330106-{x}" for x in ("CGJ", "SCJGJ", "SCJGJ-WX", "ZJJ", "STHJ", "SW"))


def ticket(**fields: Any) -> TicketToRoute:
    base: dict[str, Any] = {"ticket_id": TICKET_ID, "tenant": "330106", "category_code": "200102"}
    return TicketToRoute(**(base | fields))


def assigned(decision: Decision) -> DispatchAssignedV1:
    assert isinstance(decision.event, DispatchAssignedV1), decision.trail
    return decision.event


def manual(decision: Decision) -> DispatchNeedsManualV1:
    assert isinstance(decision.event, DispatchNeedsManualV1), decision.trail
    return decision.event


def trail(decision: Decision) -> str:
    return "\n".join(decision.trail)


@pytest.fixture
def route(demo_directory: Directory, demo_index: GridIndex) -> Any:
    def run(t: TicketToRoute, now: datetime = NOW, **kw: Any) -> Decision:
        return decide(t, demo_directory, demo_index, now, **kw)

    return run


def with_rules(directory: Directory, *rules: DispatchRule, keep: bool = True) -> Directory:
    return dataclasses.replace(directory, rules=(*(directory.rules if keep else ()), *rules))


# -- place ---------------------------------------------------------------------------------------


def test_a_point_inside_a_grid_is_dispatched_with_confidence_one(route: Any) -> None:
    decision = route(ticket(location=IN_DEJIA_1))
    event = assigned(decision)
    assert event.unit_code == "330106005" and event.unit_name == "文新街道办事处"
    assert event.grid_code == "330106005001001"
    assert (event.rule_id, event.match_method, event.confidence) == ("R0210", "point", 1.0)
    assert (event.sla_policy_key, event.directory_version, event.decided_at) == ("urgent-1wd", 1, NOW)
    assert event.ticket_id == TICKET_ID and event.co_unit_codes == []
    assert decision.assigned and decision.reason_code is None
    assert decision.rule is not None and decision.rule.id == "R0210"
    assert decision.place is not None and decision.place.grid is not None
    assert "330106005001001" in trail(decision) and "R0210" in trail(decision)


def test_a_gcj02_point_converted_at_the_edge_lands_in_the_same_grid(route: Any) -> None:
    gcj = from_wgs84(*IN_DEJIA_1, "gcj02")  # what a WeChat mini-program would send
    event = assigned(route(ticket(location=to_wgs84(*gcj, "gcj02"))))
    assert event.grid_code == "330106005001001"


def test_the_most_specific_area_wins(route: Any) -> None:
    # 翠苑街道 has its own line for 暴露垃圾 (R0211: the 社区 handles it, the 街道 assists).
    event = assigned(route(ticket(location=IN_CUIYUAN_1_2)))
    assert (event.rule_id, event.unit_code, event.co_unit_codes) == ("R0211", "330106004001", ["330106004"])


def test_an_address_is_used_when_there_is_no_point(route: Any) -> None:
    decision = route(ticket(category_code="300101", address="浙江省杭州市西湖区文三路201号"))
    event = assigned(decision)
    assert (event.match_method, event.confidence) == ("address", 0.95)
    assert event.grid_code == "330106005001001"
    assert (event.rule_id, event.unit_code, event.co_unit_codes) == ("R0601", SCJGJ_WX, [SCJGJ])
    assert decision.address_match is not None and decision.address_match.house_number == 201


def test_the_area_code_is_the_last_resort(route: Any) -> None:
    event = assigned(route(ticket(category_code="200504", area_code="330106006")))
    assert (event.match_method, event.grid_code, event.unit_code) == ("area", "330106006", "330106006")


def test_a_point_outside_every_grid_falls_back_to_the_address(route: Any) -> None:
    decision = route(ticket(location=OUTSIDE, address="翠苑一区"))
    assert assigned(decision).match_method == "address"
    assert "不在任何网格内" in trail(decision)


def test_a_point_beats_a_contradicting_address(route: Any) -> None:
    event = assigned(route(ticket(location=IN_DEJIA_1, address="翠苑一区")))
    assert (event.match_method, event.grid_code) == ("point", "330106005001001")


def test_a_low_confidence_address_is_never_used_but_a_declared_area_is(route: Any) -> None:
    # 食品安全 goes to 市场监管局 district-wide, so the district the hotline declared is enough.
    decision = route(ticket(category_code="300101", address="翠院一区", area_code="330106"))
    event = assigned(decision)
    assert (event.match_method, event.unit_code, event.grid_code) == ("area", SCJGJ, "330106")
    assert "低置信度" in trail(decision)


def test_the_tenant_code_without_a_district_polygon_means_tenant_wide(
    demo_directory: Directory, demo_index: GridIndex
) -> None:
    no_district = dataclasses.replace(
        demo_directory, grids=tuple(g for g in demo_directory.grids if g.code != "330106")
    )
    decision = decide(ticket(category_code="300101", area_code="330106"), no_district, demo_index, NOW)
    event = assigned(decision)
    assert (event.unit_code, event.grid_code, event.match_method) == (SCJGJ, None, "area")
    assert decision.place is not None and decision.place.code == "*"


# -- every reason code ---------------------------------------------------------------------------


def test_tenant_mismatch(route: Any) -> None:
    event = manual(route(ticket(tenant="330105", location=IN_DEJIA_1)))
    assert event.reason_code == "tenant_mismatch"
    assert event.reason  # a human message, Chinese by default


def test_unknown_category_suggests_the_local_units(route: Any) -> None:
    event = manual(route(ticket(category_code="209999", location=IN_DEJIA_1)))
    assert event.reason_code == "unknown_category"
    assert event.suggested_unit_codes == ["330106005001", "330106005"]


def test_no_location(route: Any) -> None:
    decision = route(ticket(category_code="300101"))
    assert manual(decision).reason_code == "no_location"
    assert manual(decision).suggested_unit_codes == [SCJGJ, SCJGJ_WX]  # where 食品安全 usually goes


def test_no_match(route: Any) -> None:
    decision = route(ticket(location=OUTSIDE, address="月球背面环形山", area_code="110101"))
    assert manual(decision).reason_code == "no_match"
    text = trail(decision)
    assert "不在任何网格内" in text and "没有匹配" in text and "110101" in text


def test_low_confidence_goes_to_the_dispatcher_with_the_guess_as_a_suggestion(route: Any) -> None:
    decision = route(ticket(address="翠院一区"))  # a typo of 翠苑一区
    event = manual(decision)
    assert event.reason_code == "low_confidence"
    assert event.suggested_unit_codes[:2] == ["330106004001", "330106004"]
    assert decision.address_match is not None and decision.address_match.low


def test_min_confidence_is_the_callers_choice(route: Any) -> None:
    assert manual(route(ticket(address="嘉绿苑"), min_confidence=0.9)).reason_code == "low_confidence"
    assert assigned(route(ticket(address="嘉绿苑"), min_confidence=0.8)).confidence == 0.88


def test_place_too_coarse_for_a_local_unit(route: Any) -> None:
    # 文三路 without a number crosses all three 街道: certain district, unknown 属地.
    decision = route(ticket(address="文三路"))
    event = manual(decision)
    assert event.reason_code == "place_too_coarse"
    assert {"330106004", "330106005", "330106006"} <= set(event.suggested_unit_codes)
    # …while a department-only category needs no 属地 and goes through.
    assert assigned(route(ticket(category_code="100118", address="文三路"))).unit_code == CGJ


def test_no_rule(route: Any, demo_directory: Directory, demo_index: GridIndex) -> None:
    no_lamp_rules = dataclasses.replace(
        demo_directory, rules=tuple(r for r in demo_directory.rules if r.category_code != "100118")
    )
    decision = decide(ticket(category_code="100118", location=IN_DEJIA_1), no_lamp_rules, demo_index, NOW)
    assert manual(decision).reason_code == "no_rule"


def test_only_excluded_units(route: Any) -> None:
    event = manual(route(ticket(category_code="100102", location=IN_DEJIA_1), exclude_units=frozenset({SW})))
    assert event.reason_code == "only_excluded_units"
    assert event.suggested_unit_codes == [CGJ]  # the rule's 协办, never the unit that returned it


def test_every_reason_code_is_reachable_and_has_a_message() -> None:
    assert set(REASON_CODES) == set(domain.REASON_MESSAGES)
    assert set(REASON_CODES) == {
        "tenant_mismatch",
        "unknown_category",
        "no_location",
        "no_match",
        "low_confidence",
        "place_too_coarse",
        "no_rule",
        "only_excluded_units",
    }


# -- department-only -----------------------------------------------------------------------------


def test_department_only_never_falls_to_a_street_or_community(demo_directory: Directory, demo_index: GridIndex) -> None:
    # Badly configured, more specific lines that would send 食品安全 to 翠苑街道 / its 社区.
    bad = with_rules(
        demo_directory,
        DispatchRule("R0001", "300101", "330106004001", "@community", priority=9),
        DispatchRule("R0002", "300101", "330106004", "330106004", co_unit_codes=("@community", ZJJ)),
    )
    decision = decide(ticket(category_code="300101", location=IN_CUIYUAN_1_2), bad, demo_index, NOW)
    event = assigned(decision)
    assert (event.rule_id, event.unit_code) == ("R0600", SCJGJ)
    text = trail(decision)
    assert "R0001" in text and "R0002" in text and "仅限职能部门" in text


def test_department_only_drops_grass_roots_co_units(demo_directory: Directory, demo_index: GridIndex) -> None:
    rules = with_rules(
        demo_directory, DispatchRule("R0002", "300101", "330106004", ZJJ, co_unit_codes=("@street", CGJ))
    )
    event = assigned(decide(ticket(category_code="300101", location=IN_CUIYUAN_1_2), rules, demo_index, NOW))
    assert (event.unit_code, event.co_unit_codes) == (ZJJ, [CGJ])


def test_department_only_with_only_grass_roots_rules_is_manual_without_local_suggestions(
    demo_directory: Directory, demo_index: GridIndex
) -> None:
    rules = dataclasses.replace(demo_directory, rules=(DispatchRule("R0001", "300101", "*", "@street"),))
    event = manual(decide(ticket(category_code="300101", location=IN_CUIYUAN_1_2), rules, demo_index, NOW))
    assert event.reason_code == "no_rule"
    assert not any(code.startswith("330106004") for code in event.suggested_unit_codes)


# -- 改派 (re-routing after a return) -------------------------------------------------------------


def test_exclusion_moves_to_the_next_rule(route: Any) -> None:
    decision = route(ticket(category_code="300101", location=IN_DEJIA_1), exclude_units=frozenset({SCJGJ_WX}))
    event = assigned(decision)
    assert (event.rule_id, event.unit_code, event.co_unit_codes) == ("R0600", SCJGJ, [])
    assert "已退单" in trail(decision)


def test_exclusion_of_a_community_falls_back_to_the_street(route: Any) -> None:
    event = assigned(route(ticket(location=IN_CUIYUAN_1_2), exclude_units=frozenset({"330106004001"})))
    assert (event.rule_id, event.unit_code) == ("R0210", "330106004")


def test_excluded_units_are_removed_from_co_units(route: Any) -> None:
    event = assigned(route(ticket(location=IN_CUIYUAN_1_2), exclude_units=frozenset({"330106004"})))
    assert (event.unit_code, event.co_unit_codes) == ("330106004001", [])


# -- effective dates, priority, ids ----------------------------------------------------------------


def test_effective_dates_switch_rules_at_midnight_local_time(route: Any) -> None:
    t = ticket(category_code="200504", location=IN_GUDANGWAN_4)
    before = route(t, now=datetime(2024, 12, 31, 23, 59, 59, tzinfo=CST))
    at = route(t, now=datetime(2025, 1, 1, 0, 0, tzinfo=CST))
    assert (assigned(before).rule_id, assigned(before).unit_code) == ("R0503", CGJ)
    assert (assigned(at).rule_id, assigned(at).unit_code) == ("R0504", "330106006")
    assert "R0503" in trail(at) and "不在有效期内" in trail(at)
    # The same instant in UTC is the same decision.
    assert assigned(route(t, now=datetime(2024, 12, 31, 16, 0, tzinfo=UTC))).rule_id == "R0504"


def test_priority_then_lowest_id_among_equally_specific_rules(demo_directory: Directory, demo_index: GridIndex) -> None:
    lamps = (
        DispatchRule("R3", "100118", "*", CGJ, priority=0),
        DispatchRule("R2", "100118", "*", ZJJ, priority=5),
        DispatchRule("R1", "100118", "*", STHJ, priority=5),
    )
    directory = dataclasses.replace(demo_directory, rules=lamps)
    event = assigned(decide(ticket(category_code="100118", location=IN_DEJIA_1), directory, demo_index, NOW))
    assert (event.rule_id, event.unit_code) == ("R1", STHJ)


def test_area_specificity_beats_priority(demo_directory: Directory, demo_index: GridIndex) -> None:
    rules = (
        DispatchRule("R1", "100118", "*", CGJ, priority=100),
        DispatchRule("R2", "100118", "330106005001001", ZJJ, priority=0),  # the base grid itself
    )
    directory = dataclasses.replace(demo_directory, rules=rules)
    assert (
        assigned(decide(ticket(category_code="100118", location=IN_DEJIA_1), directory, demo_index, NOW)).rule_id
        == "R2"
    )


def test_a_rule_naming_an_unknown_unit_is_skipped_with_a_reason(
    demo_directory: Directory, demo_index: GridIndex
) -> None:
    directory = with_rules(demo_directory, DispatchRule("R0001", "100118", "330106005", "330106-GONE"))
    decision = decide(ticket(category_code="100118", location=IN_DEJIA_1), directory, demo_index, NOW)
    assert assigned(decision).rule_id == "R0110"
    assert "330106-GONE" in trail(decision)


def test_a_rule_can_override_the_sla_policy(demo_directory: Directory, demo_index: GridIndex) -> None:
    directory = with_rules(
        demo_directory, DispatchRule("R0001", "300201", "330106005", "@community", sla_policy_key="urgent-1wd")
    )
    event = assigned(decide(ticket(category_code="300201", location=IN_DEJIA_1), directory, demo_index, NOW))
    assert (event.rule_id, event.unit_code, event.sla_policy_key) == ("R0001", "330106005001", "urgent-1wd")
    plain = assigned(decide(ticket(category_code="300201", location=IN_CUIYUAN_1_2), directory, demo_index, NOW))
    assert plain.sla_policy_key == "standard-5wd"


# -- determinism and inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"location": IN_CUIYUAN_1_2},
        {"address": "文三路"},
        {"address": "翠院一区"},
        {"category_code": "300101", "address": "文三路201号"},
        {"location": OUTSIDE},
        {"category_code": "200504", "location": IN_GUDANGWAN_4},  # passes an expired rule
    ],
)
def test_same_inputs_same_decision(demo_directory: Directory, demo_index: GridIndex, fields: dict[str, Any]) -> None:
    first = decide(ticket(**fields), demo_directory, demo_index, NOW, exclude_units=frozenset({CGJ, "330106006"}))
    again = decide(ticket(**fields), demo_directory, demo_index, NOW, exclude_units=frozenset({"330106006", CGJ}))
    shuffled = dataclasses.replace(demo_directory, rules=tuple(reversed(demo_directory.rules)))
    rebuilt = GridIndex.build(reversed(demo_directory.grids))
    other = decide(ticket(**fields), shuffled, rebuilt, NOW, exclude_units=frozenset({CGJ, "330106006"}))
    assert first == again
    assert first.event == other.event and first.trail == other.trail


def test_ticket_from_the_received_event() -> None:
    event = TicketReceivedV1(
        ticket_id=TICKET_ID,
        ticket_no="12345-20260302-000123",
        channel="hotline",
        category_code="300101",
        demand_type="complaint",
        priority="urgent",
        description="翠苑菜场熟食摊疑似售卖变质食品",
        location=GeoPoint(lon=120.131, lat=30.29),
        address="翠苑菜场",
        area_code="330106004",
        reported_at=NOW,
        received_at=NOW,
        reporter=ReporterRef(masked_phone="138****0000"),
    )
    t = TicketToRoute.from_event(event, tenant="330106")
    assert t == TicketToRoute(
        ticket_id=TICKET_ID,
        tenant="330106",
        category_code="300101",
        demand_type="complaint",
        priority="urgent",
        location=(120.131, 30.29),
        address="翠苑菜场",
        area_code="330106004",
    )


def test_now_must_be_timezone_aware(demo_directory: Directory, demo_index: GridIndex) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(ticket(location=IN_DEJIA_1), demo_directory, demo_index, datetime(2026, 3, 2, 9, 30))


FORBIDDEN = {"sqlmodel", "sqlalchemy", "aiokafka", "httpx", "prometheus_client", "asyncpg", "fastapi"}


def test_domain_imports_no_io_libraries_directly() -> None:
    tree = ast.parse(Path(domain.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN


def test_domain_imports_no_io_libraries_transitively() -> None:
    code = "import sys, routing.domain; print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))"
    result = subprocess.run(
        [sys.executable, "-c", code % (FORBIDDEN,)], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
