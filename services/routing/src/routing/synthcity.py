"""A reproducible synthetic city: grids over four levels, units, categories, 派单目录 and gazetteer.

``python -m routing.synthcity --min-grids 2000 --seed 7 --out DIR`` writes ``grids.geojson`` and
``directory.json`` (the formats :mod:`routing.directory` imports) plus ``manifest.json`` (counts,
seed, SHA-256 of both files). Same arguments, byte-identical files.

Layout. A square lattice of ``n × n`` cells (``n`` a multiple of 12, the smallest with
``n² ≥ min_grids``); each cell is one 基础网格 of about 290 m × 300 m. 4 × 4 cells make a 社区 and
3 × 3 社区 a 街道; the 区 is the union of all. Cell corners are jittered and every cell edge has three
extra vertices jittered across it, so grids are irregular 16-gons — but a shared edge is built once
and used by both neighbours, so siblings tile their parent exactly (no overlaps, no gaps) and
parents are the exact coverage union of their children.

The bundle holds one unit per 街道 and 社区 (code = grid code, so ``@street``/``@community``
resolve), a few departments and a utility, categories of the three kinds (some department-only),
rules (``*`` rules, one street-specific override, one rule with effective dates) and a gazetteer:
an east–west road on every second lattice line with house numbers (odd north side, even south
side, ten numbers per cell) and 400 named 小区, each in one grid, with a ``…小区`` alias.

No I/O except in :func:`main`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

TENANT = "330110"
DISTRICT_NAME = "合成区"
ORIGIN = (120.05, 30.20)  # south-west corner, WGS-84
CELL_DEG = (0.003, 0.0027)  # lon, lat ≈ 290 m × 300 m at 30° N
CELLS_PER_COMMUNITY = 4  # per axis
COMMUNITIES_PER_STREET = 3  # per axis
BLOCK = CELLS_PER_COMMUNITY * COMMUNITIES_PER_STREET  # cells per street, per axis
CORNER_JITTER = 0.15  # of a cell side
EDGE_JITTER = 0.05
EDGE_SPLITS = (0.25, 0.5, 0.75)
DECIMALS = 7  # ≈ 1 cm; applied to the shared vertices, so neighbours stay identical

# Disjoint character sets, so a road name never appears inside a 小区 name (the gazetteer matches substrings).
_ROAD_A = "文学教工翠古天保莫紫丰建凤庆体延中解开秋"
_ROAD_B = "晖源晓明泽溪湖桥塘港滨江河湾峰岭岗林松竹"
_ESTATE_A = "金银锦绣碧桂兰梅菊荷桃李杏枫柳樱玉珠翡琳"
_ESTATE_B = "都城庭府邸轩阁台榭舍坊居院墅廷里第汇邦厦"
_ESTATE_SUFFIX = ("苑", "花园", "家园", "公寓", "新村", "雅居")
_PLACE_A = "东西南北上下前后左右内外"
_PLACE_B = "安宁康泰兴盛福祥瑞德仁义"
_ORDINAL = "一二三四五六七八九"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚"

DEPARTMENTS = (
    ("330110-CGJ", "合成区城市管理局", "department"),
    ("330110-SCJGJ", "合成区市场监督管理局", "department"),
    ("330110-ZJJ", "合成区住房和城乡建设局", "department"),
    ("330110-STHJ", "合成区生态环境分局", "department"),
    ("330110-JTJ", "合成区交通运输局", "department"),
    ("330110-SW", "合成水务集团供水分公司", "enterprise"),
)
CATEGORIES = (
    # code, name, kind, department_only, sla policy key
    ("100101", "井盖破损", "component", True, "component-2wd"),
    ("100201", "路灯损坏", "component", True, "component-2wd"),
    ("200102", "暴露垃圾", "event", False, "event-1wd"),
    ("200501", "占道经营", "event", False, "event-1wd"),
    ("300101", "噪声扰民", "demand", True, "demand-5wd"),
    ("300201", "食品安全", "demand", True, "demand-5wd"),
    ("300301", "小区物业", "demand", False, "demand-10wd"),
    ("300401", "供水故障", "demand", True, "urgent-1d"),
)


@dataclass(frozen=True)
class SynthCity:
    """The generated files as parsed JSON, plus the layout tests need to pick points."""

    grids: dict[str, Any]  # GeoJSON FeatureCollection
    bundle: dict[str, Any]  # directory bundle
    n: int  # cells per axis
    seed: int
    corners: NDArray[np.float64]  # (n+1, n+1, 2) jittered lattice vertices (lon, lat), [row j, column i]
    cell_codes: tuple[tuple[str, ...], ...]  # [row j][column i] → 基础网格 code
    tenant: str = TENANT

    def cell_code(self, i: int, j: int) -> str:
        return self.cell_codes[j][i]

    def cell_centre(self, i: int, j: int) -> tuple[float, float]:
        """A point well inside cell (i, j): the mean of its four jittered corners."""
        c = self.corners
        pts = c[j, i], c[j, i + 1], c[j + 1, i], c[j + 1, i + 1]
        return float(sum(p[0] for p in pts) / 4), float(sum(p[1] for p in pts) / 4)

    def shared_corner(self, i: int, j: int) -> tuple[float, float]:
        """Lattice vertex (i, j): shared by up to four grids, so it tests the boundary tie rule."""
        return float(self.corners[j, i, 0]), float(self.corners[j, i, 1])


def layout_size(min_grids: int) -> int:
    """Cells per axis: the smallest multiple of :data:`BLOCK` with at least ``min_grids`` cells."""
    if min_grids < 1:
        raise ValueError("min_grids must be positive")
    return BLOCK * math.ceil(math.sqrt(min_grids) / BLOCK)


def _name(a: str, b: str, k: int) -> str:
    return a[k // len(b) % len(a)] + b[k % len(b)]


def _person(rng: np.random.Generator) -> str:
    return str(_SURNAMES[int(rng.integers(len(_SURNAMES)))] + _GIVEN[int(rng.integers(len(_GIVEN)))])


def _lattice(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], ...]:
    """Jittered corners and the jittered extra vertices of every horizontal and vertical edge, in degrees."""
    jj, ii = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    corners = np.stack([ii, jj], axis=-1).astype(np.float64)
    corners += rng.uniform(-CORNER_JITTER, CORNER_JITTER, corners.shape)
    t = np.array(EDGE_SPLITS)
    # Horizontal edge (row j, from column i to i+1): points along it, jittered in y.
    a, b = corners[:, :-1, None, :], corners[:, 1:, None, :]
    h_edges = a + (b - a) * t[None, None, :, None]
    h_edges[..., 1] += rng.uniform(-EDGE_JITTER, EDGE_JITTER, h_edges.shape[:-1])
    # Vertical edge (column i, from row j to j+1): jittered in x.
    a, b = corners[:-1, :, None, :], corners[1:, :, None, :]
    v_edges = a + (b - a) * t[None, None, :, None]
    v_edges[..., 0] += rng.uniform(-EDGE_JITTER, EDGE_JITTER, v_edges.shape[:-1])

    def to_degrees(x: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty_like(x)
        out[..., 0] = ORIGIN[0] + x[..., 0] * CELL_DEG[0]
        out[..., 1] = ORIGIN[1] + x[..., 1] * CELL_DEG[1]
        return np.round(out, DECIMALS)

    return to_degrees(corners), to_degrees(h_edges), to_degrees(v_edges)


def _cell_rings(n: int, corners: NDArray[np.float64], h: NDArray[np.float64], v: NDArray[np.float64]) -> Any:
    """(n, n, 17, 2) counter-clockwise closed rings, [row j, column i]."""
    k = len(EDGE_SPLITS)
    rings = np.empty((n, n, 4 * (k + 1) + 1, 2))
    rings[:, :, 0] = corners[:-1, :-1]
    rings[:, :, 1 : k + 1] = h[:-1, :, :]  # bottom, west → east
    rings[:, :, k + 1] = corners[:-1, 1:]
    rings[:, :, k + 2 : 2 * k + 2] = v[:, 1:, :]  # right, south → north
    rings[:, :, 2 * k + 2] = corners[1:, 1:]
    rings[:, :, 2 * k + 3 : 3 * k + 3] = h[1:, :, ::-1]  # top, east → west
    rings[:, :, 3 * k + 3] = corners[1:, :-1]
    rings[:, :, 3 * k + 4 : 4 * k + 4] = v[:, :-1, ::-1]  # left, north → south
    rings[:, :, -1] = corners[:-1, :-1]
    return rings


def _geojson(geom: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = shapely.geometry.mapping(geom)
    parsed: dict[str, Any] = json.loads(json.dumps(mapping))  # tuples → lists, as a file would give
    return parsed


def generate(min_grids: int = 2000, seed: int = 7, tenant: str = TENANT) -> SynthCity:
    """Build the city. Deterministic in (min_grids, seed, tenant); ``tenant`` only changes the codes."""
    n = layout_size(min_grids)
    rng = np.random.default_rng(seed)
    corners, h_edges, v_edges = _lattice(n, rng)
    cells = shapely.polygons(_cell_rings(n, corners, h_edges, v_edges))

    streets_per_axis = n // BLOCK
    features: list[dict[str, Any]] = []
    units: list[dict[str, Any]] = [
        {"code": c, "name": name, "kind": kind, "liaison": f"联络员 {_person(rng)}", "head": f"负责人 {_person(rng)}"}
        for c, name, kind in DEPARTMENTS
    ]
    cell_codes = [["" for _ in range(n)] for _ in range(n)]
    street_geoms, community_geoms = [], []
    street_features: list[dict[str, Any]] = []
    community_features: list[dict[str, Any]] = []
    grid_features: list[dict[str, Any]] = []
    for s in range(streets_per_axis * streets_per_axis):
        sy, sx = divmod(s, streets_per_axis)
        street_code = f"{tenant}{s + 1:03d}"
        street_name = _name(_PLACE_A, _PLACE_B, s) + "街道"
        members: list[Any] = []
        for c in range(COMMUNITIES_PER_STREET**2):
            cy, cx = divmod(c, COMMUNITIES_PER_STREET)
            community_code = f"{street_code}{c + 1:03d}"
            community_name = f"{street_name[:-2]}{_ORDINAL[c]}社区"
            cell_geoms = []
            for g in range(CELLS_PER_COMMUNITY**2):
                gy, gx = divmod(g, CELLS_PER_COMMUNITY)
                j = (sy * COMMUNITIES_PER_STREET + cy) * CELLS_PER_COMMUNITY + gy
                i = (sx * COMMUNITIES_PER_STREET + cx) * CELLS_PER_COMMUNITY + gx
                code = f"{community_code}{g + 1:03d}"
                cell_codes[j][i] = code
                geom = cells[j, i]
                cell_geoms.append(geom)
                grid_features.append(
                    {
                        "type": "Feature",
                        "properties": {
                            "code": code,
                            "name": f"{community_name}第{g + 1}网格",
                            "level": "grid",
                            "parent_code": community_code,
                            "head": f"网格长 {_person(rng)}",
                            "staff": [f"网格员 {_person(rng)}", f"网格员 {_person(rng)}"],
                        },
                        "geometry": _geojson(geom),
                    }
                )
            community = shapely.coverage_union_all(cell_geoms)
            community_geoms.append(community)
            members.append(community)
            sponsor = DEPARTMENTS[c % len(DEPARTMENTS)][0]
            community_features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "code": community_code,
                        "name": community_name,
                        "level": "community",
                        "parent_code": street_code,
                        "head": f"社区书记 {_person(rng)}",
                        "sponsor_unit_code": sponsor,
                        "sponsor_leader": f"包抓领导 {_person(rng)}",
                    },
                    "geometry": _geojson(community),
                }
            )
            units.append({"code": community_code, "name": community_name + "居委会", "kind": "community"})
        street = shapely.coverage_union_all(members)
        street_geoms.append(street)
        street_features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": street_code,
                    "name": street_name,
                    "level": "street",
                    "parent_code": tenant,
                    "head": f"街道主任 {_person(rng)}",
                },
                "geometry": _geojson(street),
            }
        )
        units.append({"code": street_code, "name": street_name + "办事处", "kind": "street"})
    district = shapely.coverage_union_all(street_geoms)
    features.append(
        {
            "type": "Feature",
            "properties": {"code": tenant, "name": DISTRICT_NAME, "level": "district", "parent_code": None},
            "geometry": _geojson(district),
        }
    )
    features += street_features + community_features + grid_features
    codes = tuple(tuple(row) for row in cell_codes)
    bundle = {
        "format": "gridline.directory-bundle.v1",
        "tenant": tenant,
        "timezone": "Asia/Shanghai",
        "units": sorted(units, key=lambda u: u["code"]),
        "categories": [
            {"code": c, "name": name, "kind": kind, "department_only": dept, "sla_policy_key": sla}
            for c, name, kind, dept, sla in CATEGORIES
        ],
        "rules": _rules(tenant),
        "gazetteer": _gazetteer(n, codes),
    }
    return SynthCity(
        grids={"type": "FeatureCollection", "features": features},
        bundle=bundle,
        n=n,
        seed=seed,
        corners=corners,
        cell_codes=codes,
        tenant=tenant,
    )


def _rules(tenant: str) -> list[dict[str, Any]]:
    first_street = f"{tenant}001"
    return [
        {"id": "R100", "category_code": "100101", "area_code": "*", "main_unit_code": "330110-CGJ"},
        {"id": "R101", "category_code": "100101", "area_code": "*", "main_unit_code": "330110-SW", "priority": -1},
        {"id": "R110", "category_code": "100201", "area_code": "*", "main_unit_code": "330110-CGJ"},
        {
            "id": "R200",
            "category_code": "2*",
            "area_code": "*",
            "main_unit_code": "@street",
            "co_unit_codes": ["330110-CGJ"],
        },
        {
            "id": "R201",
            "category_code": "200501",
            "area_code": first_street,
            "main_unit_code": "330110-CGJ",
            "co_unit_codes": ["@street"],
        },
        {"id": "R300", "category_code": "300101", "area_code": "*", "main_unit_code": "330110-STHJ"},
        {"id": "R310", "category_code": "300201", "area_code": "*", "main_unit_code": "330110-SCJGJ"},
        {
            "id": "R320",
            "category_code": "300301",
            "area_code": "*",
            "main_unit_code": "@community",
            "co_unit_codes": ["330110-ZJJ"],
        },
        {
            "id": "R330",
            "category_code": "300401",
            "area_code": "*",
            "main_unit_code": "330110-SW",
            "effective_from": "2020-01-01",
        },
    ]


def road_name(row: int) -> str:
    """The east–west road on lattice line ``row`` (even rows from 2 only)."""
    return _name(_ROAD_A, _ROAD_B, row // 2 - 1) + "路"


def estate_name(k: int) -> str:
    return _name(_ESTATE_A, _ESTATE_B, k) + _ESTATE_SUFFIX[k % len(_ESTATE_SUFFIX)]


def estate_cells(n: int) -> list[tuple[int, int]]:
    """(column, row) of the cell of each 小区, spread evenly over the city."""
    count = min(len(_ESTATE_A) * len(_ESTATE_B), n * n)
    step = (n * n) // count
    return [((k * step) % n, (k * step) // n) for k in range(count)]


def house_number(i: int, north: bool) -> int:
    """A house number on a road that lies in cell column ``i``, north (odd) or south (even) side."""
    return 10 * i + (5 if north else 6)


def _gazetteer(n: int, codes: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for row in range(2, n, 2):
        ranges = []
        for i in range(n):
            ranges.append({"from": 10 * i + 1, "to": 10 * i + 9, "parity": "odd", "grid_code": codes[row][i]})
            ranges.append({"from": 10 * i + 2, "to": 10 * i + 10, "parity": "even", "grid_code": codes[row - 1][i]})
        entries.append({"id": f"road-{row:03d}", "kind": "road", "name": road_name(row), "ranges": ranges})
    for k, (i, j) in enumerate(estate_cells(n)):
        name = estate_name(k)
        alias = name[:2] + "小区"
        entries.append(
            {"id": f"estate-{k:03d}", "kind": "community", "name": name, "aliases": [alias], "grid_code": codes[j][i]}
        )
    return {"strip_prefixes": ["浙江省", "杭州市", DISTRICT_NAME], "entries": entries}


def write(city: SynthCity, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"grids.geojson": city.grids, "directory.json": city.bundle}
    digests = {}
    for name, data in files.items():
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        (out / name).write_text(text, encoding="utf-8")
        digests[name] = hashlib.sha256(text.encode()).hexdigest()
    levels: dict[str, int] = {}
    for f in city.grids["features"]:
        levels[f["properties"]["level"]] = levels.get(f["properties"]["level"], 0) + 1
    manifest = {
        "tenant": city.tenant,
        "seed": city.seed,
        "cells_per_axis": city.n,
        "grids_by_level": levels,
        "polygons": sum(levels.values()),
        "units": len(city.bundle["units"]),
        "rules": len(city.bundle["rules"]),
        "gazetteer_entries": len(city.bundle["gazetteer"]["entries"]),
        "sha256": digests,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m routing.synthcity", description=__doc__.splitlines()[0])
    p.add_argument("--min-grids", type=int, default=2000, help="at least this many 基础网格 (default 2000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tenant", default=TENANT, help=f"GB/T 2260 code (default {TENANT})")
    p.add_argument("--out", type=Path, required=True, help="directory for grids.geojson, directory.json")
    args = p.parse_args(argv)
    manifest = write(generate(args.min_grids, args.seed, args.tenant), args.out)
    print(json.dumps(manifest, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
