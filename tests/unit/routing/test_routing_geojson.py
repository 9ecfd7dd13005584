"""Grid GeoJSON import: the validation report (rings, validity, codes, hierarchy, overlaps, gaps)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from shapely.geometry import box

from gridline_geo.crs import to_wgs84
from routing.directory import Grid, area_m2, check_grid_code, load_geojson

# One district = one street = one community (120.00–120.02 E, 30.00–30.01 N) with two base grids
# sharing the edge at 120.01.
W, E, S, N, MID = 120.00, 120.02, 30.00, 30.01, 120.01
DISTRICT, STREET, COMMUNITY = "330106", "330106004", "330106004001"
GRID_A, GRID_B = "330106004001001", "330106004001002"

# Square-metre area of 0.001° × 0.001° at 30° N in our equirectangular approximation.
M_PER_DEG = math.pi * 6_371_008.8 / 180
MILLI_SQUARE_M2 = (M_PER_DEG * 0.001) ** 2 * math.cos(math.radians(30.005))


@pytest.fixture
def city(shapes: Any) -> dict[str, Any]:
    r, f = shapes.rect, shapes.feature
    return shapes.collection(  # type: ignore[no-any-return]
        f(DISTRICT, "district", None, r(W, S, E, N), name="西湖区"),
        f(STREET, "street", DISTRICT, r(W, S, E, N), name="翠苑街道"),
        f(COMMUNITY, "community", STREET, r(W, S, E, N), name="翠苑一区社区", sponsor_unit_code="330106-CZJ"),
        f(GRID_A, "grid", COMMUNITY, r(W, S, MID, N), name="第1网格", head="李娜", staff=["李娜", "王磊"]),
        f(GRID_B, "grid", COMMUNITY, r(MID, S, E, N), name="第2网格"),
    )


def geometry_of(fc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(f["geometry"] for f in fc["features"] if f["properties"]["code"] == code)


def props_of(fc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(f["properties"] for f in fc["features"] if f["properties"]["code"] == code)


def test_a_clean_hierarchy_with_exact_shared_edges_has_no_issues(city: dict[str, Any]) -> None:
    grids, report = load_geojson(city)
    assert report.issues == ()
    assert [g.code for g in grids] == sorted([DISTRICT, STREET, COMMUNITY, GRID_A, GRID_B])
    grid_a = next(g for g in grids if g.code == GRID_A)
    assert grid_a.level == "grid" and grid_a.parent_code == COMMUNITY
    assert grid_a.staff == ("李娜", "王磊") and grid_a.head == "李娜"
    assert next(g for g in grids if g.code == COMMUNITY).sponsor_unit_code == "330106-CZJ"


def test_unclosed_ring_is_an_error_and_the_feature_is_left_out(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_B)["coordinates"][0].pop()  # drop the closing position
    grids, report = load_geojson(city)
    assert "ring_not_closed" in report.codes("error")
    assert next(i for i in report.errors if i.code == "ring_not_closed").subject == GRID_B
    assert GRID_B not in {g.code for g in grids}


def test_ring_with_too_few_positions_is_an_error(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_B)["coordinates"] = [[[MID, S], [E, S], [MID, S]]]
    _, report = load_geojson(city)
    assert "ring_too_short" in report.codes("error")


def test_self_intersection_is_reported_with_shapelys_explanation(city: dict[str, Any]) -> None:
    # A bow-tie: the edges cross in the middle.
    geometry_of(city, GRID_B)["coordinates"] = [[[MID, S], [E, N], [E, S], [MID, N], [MID, S]]]
    grids, report = load_geojson(city)
    issue = next(i for i in report.errors if i.code == "invalid_geometry")
    assert issue.subject == GRID_B
    assert "Self-intersection" in issue.message
    assert GRID_B not in {g.code for g in grids}


def test_overlapping_siblings_are_an_error_with_the_area_in_square_metres(city: dict[str, Any]) -> None:
    # Grid A reaches 0.001° (about 96 m) into grid B, over the full height (0.01°).
    geometry_of(city, GRID_A)["coordinates"] = [[[W, S], [MID + 0.001, S], [MID + 0.001, N], [W, N], [W, S]]]
    _, report = load_geojson(city)
    overlap = next(i for i in report.errors if i.code == "overlap")
    assert overlap.subject == f"{GRID_A}/{GRID_B}"
    assert overlap.area_m2 == pytest.approx(10 * MILLI_SQUARE_M2, rel=0.01)
    assert "m²" in overlap.message


def test_gap_between_children_is_a_warning_with_its_area(city: dict[str, Any]) -> None:
    # Grid B shrinks 0.001° from the east edge, leaving a strip of the community uncovered.
    geometry_of(city, GRID_B)["coordinates"] = [[[MID, S], [E - 0.001, S], [E - 0.001, N], [MID, N], [MID, S]]]
    grids, report = load_geojson(city)
    assert report.ok  # a gap does not block an import
    gap = next(i for i in report.warnings if i.code == "gap")
    assert gap.subject == COMMUNITY
    assert gap.area_m2 == pytest.approx(10 * MILLI_SQUARE_M2, rel=0.01)
    assert len(grids) == 5


def test_child_sticking_out_of_its_parent_is_an_error(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_B)["coordinates"] = [[[MID, S], [E + 0.001, S], [E + 0.001, N], [MID, N], [MID, S]]]
    _, report = load_geojson(city)
    issue = next(i for i in report.errors if i.code == "outside_parent")
    assert issue.subject == GRID_B
    assert issue.area_m2 == pytest.approx(10 * MILLI_SQUARE_M2, rel=0.01)


def test_floating_point_slivers_below_the_threshold_are_ignored(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_A)["coordinates"] = [[[W, S], [MID + 1e-9, S], [MID + 1e-9, N], [W, N], [W, S]]]
    _, report = load_geojson(city)
    assert report.issues == ()


@pytest.mark.parametrize(
    ("code", "mutate", "issue"),
    [
        (GRID_B, {"parent_code": "330106004009"}, "unknown_parent"),
        (GRID_B, {"parent_code": STREET}, "bad_parent_level"),
        (GRID_B, {"level": "block"}, "bad_level"),
        (GRID_B, {"parent_code": None}, "missing_parent"),
        (GRID_B, {"name": ""}, "missing_name"),
        (GRID_B, {"staff": "李娜"}, "bad_staff"),
        (DISTRICT, {"parent_code": "330100"}, "bad_parent"),
    ],
)
def test_hierarchy_problems(city: dict[str, Any], code: str, mutate: dict[str, Any], issue: str) -> None:
    props_of(city, code).update(mutate)
    _, report = load_geojson(city)
    assert issue in report.codes("error")


def test_grid_code_must_extend_its_parents_code(city: dict[str, Any]) -> None:
    props_of(city, GRID_B)["code"] = "330106004002002"
    grids, report = load_geojson(city)
    issue = next(i for i in report.errors if i.code == "bad_code")
    assert issue.subject == "330106004002002"
    assert "330106004001" in issue.message
    assert "330106004002002" not in {g.code for g in grids}


def test_duplicate_codes_are_reported(city: dict[str, Any]) -> None:
    city["features"].append(copy.deepcopy(city["features"][-1]))
    _, report = load_geojson(city)
    assert "duplicate_code" in report.codes("error")


def test_a_child_of_a_rejected_parent_is_not_reported_as_orphaned(city: dict[str, Any]) -> None:
    geometry_of(city, COMMUNITY)["coordinates"][0].pop()
    _, report = load_geojson(city)
    assert "ring_not_closed" in report.codes("error")
    assert "unknown_parent" not in report.codes()


@pytest.mark.parametrize(
    ("code", "level", "parent", "ok"),
    [
        ("330106", "district", None, True),
        ("990106", "district", None, False),  # no province 99
        ("330000", "district", None, False),  # a province, not a district
        ("33010", "district", None, False),
        ("330106004", "street", "330106", True),
        ("330106000", "street", "330106", False),
        ("330106600", "street", "330106", False),  # GB/T 10114 stops at 599 for our purposes
        ("330105004", "street", "330106", False),  # wrong district
        ("330106004001", "community", "330106004", True),
        ("330106004000", "community", "330106004", False),
        ("330106004001001", "grid", "330106004001", True),
        ("33010600400101", "grid", "330106004001", False),
        ("330106004001A01", "grid", "330106004001", False),
        ("330106004000901", "unit_grid", "330106004", True),  # a 万米单元网格 under a street
    ],
)
def test_code_shapes(code: str, level: str, parent: str | None, ok: bool) -> None:
    parent_grid = None
    if parent is not None:
        parent_grid = Grid(code=parent, name="上级", level="district", parent_code=None, geometry=box(W, S, E, N))
    assert (check_grid_code(code, level, parent_grid) is None) is ok


def test_coordinates_out_of_range_and_wrong_types_are_errors(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_B)["coordinates"][0][1] = [200.0, S]
    _, report = load_geojson(city)
    assert "bad_coordinates" in report.codes("error")
    geometry_of(city, GRID_B)["type"] = "LineString"
    _, report = load_geojson(city)
    assert "bad_geometry_type" in report.codes("error")


@pytest.mark.parametrize("bad", [{"type": "Feature"}, {"type": "FeatureCollection"}, [], "grids"])
def test_not_a_feature_collection(bad: Any) -> None:
    grids, report = load_geojson(bad)
    assert grids == []
    assert report.codes("error") == ["not_feature_collection"]


def test_multipolygons_are_accepted(city: dict[str, Any]) -> None:
    geometry_of(city, GRID_B).update(
        type="MultiPolygon",
        coordinates=[
            [[[MID, S], [E, S], [E, S + 0.004], [MID, S + 0.004], [MID, S]]],
            [[[MID, S + 0.005], [E, S + 0.005], [E, N], [MID, N], [MID, S + 0.005]]],
        ],
    )
    grids, report = load_geojson(city)
    assert report.errors == ()
    assert next(g for g in grids if g.code == GRID_B).geometry.geom_type == "MultiPolygon"


def test_gcj02_input_is_converted_to_wgs84(shapes: Any) -> None:
    fc = shapes.collection(shapes.feature(DISTRICT, "district", None, shapes.rect(W, S, E, N)))
    (converted,), report = load_geojson(fc, crs="gcj02")
    assert report.ok
    corners = [(W, S), (E, S), (E, N), (W, N), (W, S)]
    expected = [to_wgs84(x, y, "gcj02") for x, y in corners]
    assert list(converted.geometry.exterior.coords) == expected
    assert expected[0][0] < W  # GCJ-02 is WGS-84 pushed east (and a few hundred metres in all)


def test_area_is_in_square_metres() -> None:
    assert area_m2(box(120.0, 30.0, 120.001, 30.001)) == pytest.approx(MILLI_SQUARE_M2, rel=1e-3)
    assert area_m2(box(120.0, 30.0, 120.0, 30.0)) == 0.0
