"""Fixtures for the routing unit tests: the demo city and builders for tiny synthetic directories."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from routing.directory import Bundle, Directory, Grid, ValidationReport, assemble, load_bundle, load_geojson
from routing.gridindex import GridIndex

DEMO = Path(__file__).resolve().parents[3] / "demo" / "city"


class Shapes:
    """GeoJSON builders for synthetic grids (handed to tests through the ``shapes`` fixture)."""

    @staticmethod
    def rect(w: float, s: float, e: float, n: float) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    @staticmethod
    def feature(code: str, level: str, parent: str | None, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
        name = props.pop("name", f"网格{code}")
        return {
            "type": "Feature",
            "properties": {"code": code, "name": name, "level": level, "parent_code": parent} | props,
            "geometry": geometry,
        }

    @staticmethod
    def collection(*features: dict[str, Any]) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": list(features)}


@pytest.fixture(scope="session")
def shapes() -> type[Shapes]:
    return Shapes


@pytest.fixture(scope="session")
def demo_grids() -> tuple[list[Grid], ValidationReport]:
    with open(DEMO / "grids.geojson", encoding="utf-8") as fh:
        return load_geojson(json.load(fh))


@pytest.fixture(scope="session")
def demo_bundle() -> tuple[Bundle, ValidationReport]:
    return load_bundle(DEMO / "directory.json")


@pytest.fixture(scope="session")
def demo_directory(
    demo_grids: tuple[list[Grid], ValidationReport], demo_bundle: tuple[Bundle, ValidationReport]
) -> Directory:
    directory, report = assemble(demo_bundle[0], demo_grids[0])
    assert report.ok, report.errors
    return directory


@pytest.fixture(scope="session")
def demo_index(demo_directory: Directory) -> GridIndex:
    return GridIndex.build(demo_directory.grids)


@pytest.fixture(scope="session")
def demo_raw_bundle() -> Callable[[], dict[str, Any]]:
    """A fresh, mutable copy of the demo bundle JSON for tests that tweak it."""
    text = (DEMO / "directory.json").read_text(encoding="utf-8")
    return lambda: json.loads(text)
