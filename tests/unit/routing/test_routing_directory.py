"""Directory bundle loading and cross-checks (units, categories, the 派单目录, the gazetteer)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box

from routing.directory import (
    Bundle,
    Directory,
    DispatchRule,
    Grid,
    assemble,
    check_directory,
    load_bundle,
    tenant_prefix,
)

CST = timezone(timedelta(hours=8))
RawBundle = Callable[[], dict[str, Any]]


def rule_by_id(bundle: Bundle, rule_id: str) -> DispatchRule:
    return next(r for r in bundle.rules if r.id == rule_id)


def test_bundle_loads_from_a_path_and_from_a_mapping_alike(demo_raw_bundle: RawBundle, tmp_path: Path) -> None:
    raw = demo_raw_bundle()
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    from_path, report_a = load_bundle(path)
    from_str, _ = load_bundle(str(path))
    from_dict, report_b = load_bundle(raw)
    assert report_a.issues == report_b.issues == ()
    assert from_path == from_dict == from_str
    assert from_path.tenant == "330106"
    assert from_path.gazetteer_prefixes[:2] == ("浙江省", "浙江")


def test_date_only_rule_dates_are_midnight_in_the_tenant_timezone(demo_raw_bundle: RawBundle) -> None:
    bundle, _ = load_bundle(demo_raw_bundle())
    assert rule_by_id(bundle, "R0503").effective_to == datetime(2025, 1, 1, tzinfo=CST)
    assert rule_by_id(bundle, "R0504").effective_from == datetime(2025, 1, 1, tzinfo=CST)
    raw = demo_raw_bundle()
    raw["timezone"] = "UTC"
    bundle, _ = load_bundle(raw)
    assert rule_by_id(bundle, "R0504").effective_from == datetime(2025, 1, 1, tzinfo=UTC)


def test_rule_effective_window_is_from_inclusive_to_exclusive() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=CST), datetime(2026, 7, 1, tzinfo=CST)
    rule = DispatchRule("R1", "200102", "*", "@street", effective_from=start, effective_to=end)
    assert not rule.is_effective(start - timedelta(microseconds=1))
    assert rule.is_effective(start)
    assert rule.is_effective(end - timedelta(microseconds=1))
    assert not rule.is_effective(end)


def test_naive_rule_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DispatchRule("R1", "200102", "*", "@street", effective_from=datetime(2026, 1, 1))


def test_prefix_rules_match_by_prefix() -> None:
    rule = DispatchRule("R1", "2005*", "*", "@street")
    assert rule.is_prefix
    assert rule.matches_category("200501") and rule.matches_category("200508")
    assert not rule.matches_category("200401")
    assert DispatchRule("R2", "200501", "*", "@street").matches_category("200501")
    assert not DispatchRule("R2", "200501", "*", "@street").matches_category("2005011")


def test_unreadable_and_malformed_files_give_a_report_not_an_exception(tmp_path: Path) -> None:
    _, report = load_bundle(tmp_path / "missing.json")
    assert report.codes() == ["unreadable"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    _, report = load_bundle(bad)
    assert report.codes() == ["bad_json"]
    _, report = load_bundle({"format": "something-else.v9", "tenant": "330106"})
    assert "bad_format" in report.codes("error")


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b.update(tenant="3301"), "bad_tenant"),
        (lambda b: b.update(version=0), "bad_version"),
        (lambda b: b.update(timezone="Mars/Olympus"), "bad_timezone"),
        (lambda b: b["units"].append(dict(b["units"][0])), "duplicate_unit"),
        (lambda b: b["units"][0].update(kind="ngo"), "bad_unit"),
        (lambda b: b["categories"].append(dict(b["categories"][0])), "duplicate_category"),
        (lambda b: b["categories"][0].update(kind="complaint"), "bad_category"),
        (lambda b: b["categories"][0].pop("sla_policy_key"), "bad_category"),
        (lambda b: b["categories"][0].update(department_only="yes"), "bad_category"),
        (lambda b: b["rules"].append(dict(b["rules"][0])), "duplicate_rule"),
        (lambda b: b["rules"][0].update(main_unit_code="330106-NOBODY"), "unknown_unit"),
        (lambda b: b["rules"][0].update(co_unit_codes=["@grid"]), "unknown_unit"),
        (lambda b: b["rules"][0].update(category_code="999999"), "unknown_category"),
        (lambda b: b["rules"][0].update(area_code="West Lake"), "bad_rule"),
        (lambda b: b["rules"][0].update(priority="high"), "bad_rule"),
        (lambda b: b["rules"][0].update(effective_from="next monday"), "bad_rule"),
        (lambda b: b["rules"][0].update(effective_from="2026-02-01", effective_to="2026-01-01"), "bad_rule"),
        (
            lambda b: b["gazetteer"]["entries"][0]["ranges"].append({"from": 9, "to": 1, "grid_code": "x"}),
            "bad_gazetteer",
        ),
        (lambda b: b["gazetteer"]["entries"].append(dict(b["gazetteer"]["entries"][0])), "duplicate_gazetteer_entry"),
        (lambda b: b["gazetteer"]["entries"][-1].pop("grid_code"), "bad_gazetteer"),
    ],
)
def test_bundle_errors_have_stable_codes(demo_raw_bundle: RawBundle, mutate: Callable[[Any], Any], code: str) -> None:
    raw = demo_raw_bundle()
    mutate(raw)
    _, report = load_bundle(raw)
    assert code in report.codes("error"), report.issues


def test_a_department_only_category_sent_to_a_street_is_an_error(demo_raw_bundle: RawBundle) -> None:
    raw = demo_raw_bundle()
    rule = next(r for r in raw["rules"] if r["category_code"] == "300101")  # 食品安全, department-only
    rule["main_unit_code"] = "@street"
    _, report = load_bundle(raw)
    assert "department_only_to_grass_roots" in report.codes("error")
    raw = demo_raw_bundle()
    next(r for r in raw["rules"] if r["category_code"] == "300101")["main_unit_code"] = "330106004"
    _, report = load_bundle(raw)
    assert "department_only_to_grass_roots" in report.codes("error")


def test_a_prefix_rule_spanning_a_department_only_category_is_only_a_warning(demo_raw_bundle: RawBundle) -> None:
    raw = demo_raw_bundle()
    raw["rules"].append({"id": "R9000", "category_code": "2005*", "area_code": "*", "main_unit_code": "@street"})
    _, report = load_bundle(raw)
    assert report.ok
    assert "department_only_rule_skipped" in report.codes("warning")  # 200508 商业噪音 is department-only


def test_an_empty_directory_is_reported_clearly() -> None:
    directory, report = assemble(Bundle(tenant="330106"), [])
    assert set(report.codes("error")) == {"no_grids", "no_units", "no_categories", "no_rules"}
    assert directory.version == 1


def test_cross_references_are_checked(demo_raw_bundle: RawBundle, demo_directory: Directory) -> None:
    raw = demo_raw_bundle()
    raw["rules"][0]["area_code"] = "330106009"  # no such street
    raw["gazetteer"]["entries"][-1]["grid_code"] = "330106004001009"
    raw["categories"].append(
        {
            "code": "200999",
            "name": "其他事件",
            "kind": "event",
            "department_only": False,
            "sla_policy_key": "standard-5wd",
        }
    )
    bundle, bundle_report = load_bundle(raw)
    assert bundle_report.ok
    _, report = assemble(bundle, demo_directory.grids)
    assert {"unknown_area", "unknown_grid"} <= set(report.codes("error"))
    assert "category_without_rule" in report.codes("warning")


def test_grids_outside_the_tenant_are_errors(demo_directory: Directory) -> None:
    stranger = Grid("330105001", "别区街道", "street", "330105", box(120.0, 30.0, 120.01, 30.01))
    bundle = Bundle(
        tenant="330106",
        units=demo_directory.units,
        categories=demo_directory.categories,
        rules=demo_directory.rules,
    )
    _, report = assemble(bundle, (*demo_directory.grids, stranger))
    assert "grid_outside_tenant" in report.codes("error")


def test_directory_lookups_and_ancestors(demo_directory: Directory) -> None:
    chain = demo_directory.ancestors("330106004001002")
    assert [g.level for g in chain] == ["grid", "community", "street", "district"]
    assert [g.code for g in chain] == ["330106004001002", "330106004001", "330106004", "330106"]
    assert demo_directory.ancestors("nope") == ()
    assert demo_directory.unit("330106-SCJGJ") is not None
    assert demo_directory.category("300101") is not None
    street = demo_directory.grid("330106004")
    assert street is not None and demo_directory.place_unit_code(street) == "330106004"


def test_check_directory_is_clean_for_the_demo(demo_directory: Directory) -> None:
    assert check_directory(demo_directory).issues == ()


@pytest.mark.parametrize(("tenant", "prefix"), [("330106", "330106"), ("330100", "3301"), ("330000", "33")])
def test_tenant_prefix(tenant: str, prefix: str) -> None:
    assert tenant_prefix(tenant) == prefix
