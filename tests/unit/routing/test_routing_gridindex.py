"""Point → grid: inside, outside, shared boundaries, nested levels, and the bulk helper."""

from __future__ import annotations

import random
from typing import Any

import pytest
import shapely

from routing.directory import Directory, Grid, load_geojson
from routing.gridindex import GridIndex

# A community 120.00–120.03 × 30.00–30.01 with three base grids: A and B equally wide (0.01°), C half
# as wide (0.005°), leaving 120.025–120.03 uncovered (a gap) where points fall back to the community.
# The district reaches 0.01° further east than its one street.
DISTRICT, STREET, COMMUNITY = "330106", "330106004", "330106004001"
A, B, C = "330106004001001", "330106004001002", "330106004001003"
UNIT = "330106004001901"


@pytest.fixture(scope="module")
def grids(shapes: Any) -> list[Grid]:
    r, f = shapes.rect, shapes.feature
    fc = shapes.collection(
        f(DISTRICT, "district", None, r(120.00, 30.00, 120.04, 30.01)),
        f(STREET, "street", DISTRICT, r(120.00, 30.00, 120.03, 30.01)),
        f(COMMUNITY, "community", STREET, r(120.00, 30.00, 120.03, 30.01)),
        f(A, "grid", COMMUNITY, r(120.00, 30.00, 120.01, 30.01)),
        f(B, "grid", COMMUNITY, r(120.01, 30.00, 120.02, 30.01)),
        f(C, "grid", COMMUNITY, r(120.02, 30.00, 120.025, 30.01)),
        f(UNIT, "unit_grid", COMMUNITY, r(120.00, 30.00, 120.03, 30.01)),
    )
    loaded, report = load_geojson(fc)
    assert report.ok, report.errors
    return loaded


@pytest.fixture(scope="module")
def index(grids: list[Grid]) -> GridIndex:
    return GridIndex.build(grids)


def code(grid: Grid | None) -> str | None:
    return grid.code if grid is not None else None


def test_a_point_inside_a_base_grid_gets_that_grid(index: GridIndex) -> None:
    assert code(index.locate(120.005, 30.005)) == A
    assert code(index.locate(120.015, 30.002)) == B


def test_a_point_outside_every_grid_gets_none(index: GridIndex) -> None:
    assert index.locate(121.0, 31.0) is None
    assert index.locate(120.05, 30.005) is None
    assert index.locate(float("nan"), 30.0) is None


def test_nested_levels_fall_back_to_the_deepest_level_covering_the_point(index: GridIndex) -> None:
    assert code(index.locate(120.027, 30.005)) == COMMUNITY  # in the gap of the community
    assert code(index.locate(120.035, 30.005)) == DISTRICT  # in the district, outside the street
    covering = [g.code for g in index.covering(120.005, 30.005)]
    assert covering == [A, COMMUNITY, STREET, DISTRICT]


def test_a_point_on_the_shared_edge_of_equal_grids_goes_to_the_lower_code(index: GridIndex) -> None:
    assert code(index.locate(120.01, 30.005)) == A  # A|B share x = 120.01, equal areas


def test_a_point_on_the_shared_edge_of_unequal_grids_goes_to_the_smaller(index: GridIndex) -> None:
    assert code(index.locate(120.02, 30.005)) == C  # B|C share x = 120.02, C is half of B


def test_a_point_on_the_outer_boundary_still_resolves(index: GridIndex) -> None:
    assert code(index.locate(120.00, 30.005)) == A
    assert code(index.locate(120.005, 30.01)) == A


def test_the_boundary_rule_does_not_depend_on_input_order(grids: list[Grid]) -> None:
    points = [(120.01, 30.005), (120.02, 30.005), (120.01, 30.00), (120.02, 30.01), (120.025, 30.005)]
    expected = [code(GridIndex.build(grids).locate(*p)) for p in points]
    rng = random.Random(20260302)
    for _ in range(5):
        shuffled = grids[:]
        rng.shuffle(shuffled)
        assert [code(GridIndex.build(shuffled).locate(*p)) for p in points] == expected


def test_unit_grids_are_a_separate_layer(index: GridIndex) -> None:
    assert code(index.locate_unit_grid(120.005, 30.005)) == UNIT
    assert code(index.locate(120.005, 30.005)) == A
    assert index.locate_unit_grid(120.035, 30.005) is None
    assert len(index) == 7


def test_locate_many_gives_the_same_answers_as_locate(index: GridIndex) -> None:
    rng = random.Random(7)
    lons = [round(rng.uniform(119.995, 120.045), 3) for _ in range(2000)]  # rounding lands many on edges
    lats = [round(rng.uniform(29.995, 30.015), 3) for _ in range(2000)]
    bulk = index.locate_many(lons, lats)
    assert [code(g) for g in bulk] == [code(index.locate(x, y)) for x, y in zip(lons, lats, strict=True)]
    assert any(g is None for g in bulk) and any(g is not None for g in bulk)


def test_locate_many_edge_cases(index: GridIndex) -> None:
    assert index.locate_many([], []) == []
    with pytest.raises(ValueError):
        index.locate_many([120.0, 120.1], [30.0])


def test_an_empty_index_finds_nothing() -> None:
    empty = GridIndex.build([])
    assert empty.locate(120.0, 30.0) is None
    assert empty.locate_many([120.0], [30.0]) == [None]
    assert empty.locate_unit_grid(120.0, 30.0) is None


def test_duplicate_codes_are_refused(grids: list[Grid]) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        GridIndex.build([*grids, grids[0]])


def test_every_demo_base_grid_owns_its_interior(demo_directory: Directory, demo_index: GridIndex) -> None:
    for grid in demo_directory.grids:
        if grid.level == "grid":
            point = grid.geometry.representative_point()
            assert code(demo_index.locate(point.x, point.y)) == grid.code


def test_demo_corner_shared_by_four_grids_resolves_deterministically(demo_index: GridIndex) -> None:
    # 120.125/30.285 is where 翠苑一区 grids 1|2 meet 翠苑二区 grid 1 (two levels of siblings).
    first = code(demo_index.locate(120.125, 30.285))
    assert first is not None
    assert all(code(demo_index.locate(120.125, 30.285)) == first for _ in range(10))
    smallest = min(demo_index.covering(120.125, 30.285), key=lambda g: (g.level != "grid", g.area_m2, g.code))
    assert first == smallest.code


def polygon(*rings: list[tuple[float, float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[list(p) for p in (*ring, ring[0])] for ring in rings]}


def test_irregular_polygons_agree_with_brute_force(shapes: Any) -> None:
    # Grid A is a square inside grid B (a square with a hole); two triangles split the east half.
    f, r = shapes.feature, shapes.rect
    inner = [(120.002, 30.002), (120.006, 30.002), (120.006, 30.006), (120.002, 30.006)]
    fc = shapes.collection(
        f(DISTRICT, "district", None, r(120.00, 30.00, 120.02, 30.01)),
        f(STREET, "street", DISTRICT, r(120.00, 30.00, 120.02, 30.01)),
        f(COMMUNITY, "community", STREET, r(120.00, 30.00, 120.02, 30.01)),
        f(A, "grid", COMMUNITY, polygon(inner)),
        f(B, "grid", COMMUNITY, polygon([(120.0, 30.0), (120.01, 30.0), (120.01, 30.01), (120.0, 30.01)], inner)),
        f(C, "grid", COMMUNITY, polygon([(120.01, 30.0), (120.02, 30.0), (120.02, 30.01)])),
        f("330106004001004", "grid", COMMUNITY, polygon([(120.01, 30.0), (120.02, 30.01), (120.01, 30.01)])),
    )
    grids, report = load_geojson(fc)
    assert report.issues == ()
    index = GridIndex.build(grids)
    depth = {"grid": 3, "community": 2, "street": 1, "district": 0}
    ranked = sorted(grids, key=lambda g: (-depth[g.level], round(g.area_m2), g.code))
    rng = random.Random(11)
    for _ in range(3000):
        x, y = round(rng.uniform(119.999, 120.021), 3), round(rng.uniform(29.999, 30.011), 3)
        expected = next((g.code for g in ranked if g.geometry.covers(shapely.Point(x, y))), None)
        assert code(index.locate(x, y)) == expected, (x, y)
        assert code(index.locate_many([x], [y])[0]) == expected, (x, y)
