"""The demo city (demo/city, tenant 330106 杭州市西湖区) loads cleanly and is coherent."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from routing.directory import Bundle, Directory, Grid, ValidationReport
from routing.domain import TicketToRoute, decide
from routing.gridindex import GridIndex

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=8)))


def test_grids_load_with_an_empty_report(demo_grids: tuple[list[Grid], ValidationReport]) -> None:
    grids, report = demo_grids
    assert report.issues == ()  # no errors, and no gaps or overlaps either
    assert len(grids) == 28


def test_bundle_loads_with_an_empty_report(demo_bundle: tuple[Bundle, ValidationReport]) -> None:
    bundle, report = demo_bundle
    assert report.issues == ()
    assert bundle.tenant == "330106"
    assert 12 <= len(bundle.categories) <= 20
    assert any(c.department_only for c in bundle.categories)
    assert {c.sla_policy_key for c in bundle.categories} == {"standard-5wd", "urgent-1wd", "consult-3wd"}
    assert {"road", "community", "poi"} == {e.kind for e in bundle.gazetteer}


def test_hierarchy_shape(demo_directory: Directory) -> None:
    levels = Counter(g.level for g in demo_directory.grids)
    assert levels == {"district": 1, "street": 3, "community": 6, "grid": 18}
    for community in (g for g in demo_directory.grids if g.level == "community"):
        children = [g for g in demo_directory.grids if g.parent_code == community.code]
        assert 2 <= len(children) <= 4
        assert len(community.code) == 12 and community.sponsor_unit_code is not None
    assert all(len(g.code) == 9 for g in demo_directory.grids if g.level == "street")


def test_every_street_and_community_has_a_unit(demo_directory: Directory) -> None:
    for grid in demo_directory.grids:
        if grid.level in ("street", "community"):
            unit = demo_directory.unit(demo_directory.place_unit_code(grid))
            assert unit is not None and unit.kind == grid.level


def test_every_category_has_a_rule(demo_directory: Directory) -> None:
    for category in demo_directory.categories:
        assert any(r.matches_category(category.code) for r in demo_directory.rules), category.code


def test_every_category_is_dispatched_from_every_base_grid(demo_directory: Directory, demo_index: GridIndex) -> None:
    """The 派单目录 is complete: no category falls to the manual queue for a located point."""
    departments = {u.code for u in demo_directory.units if u.kind in ("department", "enterprise")}
    for grid in (g for g in demo_directory.grids if g.level == "grid"):
        point = grid.geometry.representative_point()
        for category in demo_directory.categories:
            ticket = TicketToRoute(uuid.UUID(int=1), "330106", category.code, location=(point.x, point.y))
            decision = decide(ticket, demo_directory, demo_index, NOW)
            assert decision.assigned, (grid.code, category.code, decision.trail)
            if category.department_only:
                assert decision.event.unit_code in departments  # type: ignore[union-attr]
