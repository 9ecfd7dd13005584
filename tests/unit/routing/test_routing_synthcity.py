"""The synthetic city is reproducible, valid, tiles exactly and matches its own gazetteer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing import synthcity
from routing.directory import Directory, assemble, load_bundle, load_geojson
from routing.gridindex import GridIndex


@pytest.fixture(scope="module")
def city() -> synthcity.SynthCity:
    return synthcity.generate(2000, seed=7)


@pytest.fixture(scope="module")
def loaded(city: synthcity.SynthCity) -> tuple[Directory, GridIndex]:
    grids, grid_report = load_geojson(city.grids)
    bundle, bundle_report = load_bundle({**city.bundle})
    directory, cross = assemble(bundle, grids)
    report = grid_report + bundle_report + cross
    assert report.ok, report.errors[:5]
    assert not report.warnings, report.warnings[:5]  # no gaps: children tile their parents exactly
    return directory, GridIndex.build(directory.grids)


def test_at_least_2000_grids_over_four_levels(city: synthcity.SynthCity) -> None:
    levels: dict[str, int] = {}
    for f in city.grids["features"]:
        levels[f["properties"]["level"]] = levels.get(f["properties"]["level"], 0) + 1
    assert levels["grid"] >= 2000
    assert set(levels) == {"district", "street", "community", "grid"}
    assert levels == {"district": 1, "street": 16, "community": 144, "grid": 2304}


def test_same_seed_same_bytes_other_seed_other_city(tmp_path: Path, city: synthcity.SynthCity) -> None:
    a = synthcity.write(city, tmp_path / "a")
    b = synthcity.write(synthcity.generate(2000, seed=7), tmp_path / "b")
    c = synthcity.write(synthcity.generate(2000, seed=8), tmp_path / "c")
    assert a["sha256"] == b["sha256"]
    assert a["sha256"]["grids.geojson"] != c["sha256"]["grids.geojson"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))["polygons"] == 2465


def test_command_writes_files(tmp_path: Path) -> None:
    assert synthcity.main(["--min-grids", "100", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"grids.geojson", "directory.json", "manifest.json"}


def test_every_cell_centre_locates_to_its_cell(city: synthcity.SynthCity, loaded: tuple[Directory, GridIndex]) -> None:
    _, index = loaded
    for j in range(0, city.n, 5):
        for i in range(0, city.n, 3):
            found = index.locate(*city.cell_centre(i, j))
            assert found is not None and found.code == city.cell_code(i, j)


def test_shared_corner_resolves_to_one_of_its_cells_deterministically(
    city: synthcity.SynthCity, loaded: tuple[Directory, GridIndex]
) -> None:
    _, index = loaded
    corner = city.shared_corner(10, 10)
    around = {city.cell_code(i, j) for i in (9, 10) for j in (9, 10)}
    covering = {g.code for g in index.covering(*corner) if g.level == "grid"}
    assert covering == around
    found = index.locate(*corner)
    assert found is not None and found.code in around
    assert all(index.locate(*corner) == found for _ in range(3))


def test_road_house_numbers_and_estates_match_their_cells(
    city: synthcity.SynthCity, loaded: tuple[Directory, GridIndex]
) -> None:
    directory, _ = loaded
    matcher = directory.address_matcher
    row, col = 6, 17
    north = matcher.match(f"合成区{synthcity.road_name(row)}{synthcity.house_number(col, True)}号", min_confidence=0.8)
    south = matcher.match(f"{synthcity.road_name(row)}{synthcity.house_number(col, False)}号", min_confidence=0.8)
    assert north is not None and not north.low and north.grid_code == city.cell_code(col, row)
    assert south is not None and not south.low and south.grid_code == city.cell_code(col, row - 1)
    i, j = synthcity.estate_cells(city.n)[42]
    estate = matcher.match(f"{synthcity.estate_name(42)}3幢2单元", min_confidence=0.8)
    assert estate is not None and not estate.low and estate.grid_code == city.cell_code(i, j)
