"""Point → grid lookup over one directory version, in memory (shapely ``STRtree``).

**Which grid a point belongs to.** Among the base grids (district, street, community, grid) that
*cover* the point — boundary included, so a point on an edge is never "nowhere" — the answer is the
deepest level (a 基础网格 if one covers it, else the 社区, else the 街道 …), then the smallest area
(in whole m², so that floating-point noise between two equal grids does not decide), then the lowest
code. A point exactly on the edge two sibling grids share therefore always resolves to the same one:
the smaller grid, or on equal areas the one with the lower code.

**How.** The order is precomputed as one integer rank per grid. :meth:`GridIndex.locate_many` runs
one vectorised ``STRtree`` query and exact ``shapely.intersects_xy`` tests on prepared polygons, then
takes the best rank per point. A single :meth:`GridIndex.locate` avoids building a shapely point (which
costs more than the whole lookup): a uniform cell table, filled from the STRtree at build time, lists
each cell's candidates best rank first, and the first one that covers the point is the answer. Both
paths give the same answers (a test checks it).

万米单元网格 (``unit_grid``) are a separate layer (:meth:`GridIndex.locate_unit_grid`); they never
shadow base grids.

Immutable after :meth:`GridIndex.build`; safe to share between coroutines and threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from .directory import BASE_LEVELS, LEVEL_DEPTH, Grid

_CELLS_PER_GRID = 2  # cell table size relative to the number of grids
_MAX_CELLS_PER_AXIS = 2048
_CELL_PAD_DEG = 1e-9  # cell boxes overlap by this much so rounding never drops a candidate


@dataclass(frozen=True, eq=False)
class _Layer:
    """One layer of grids: an STRtree (bulk queries) and a uniform cell table (single lookups).

    The cell table is built from the tree once: each cell lists the grids whose bounding boxes touch
    it, best rank first, so a single lookup is arithmetic, a list walk with a bounding-box check and
    usually one exact point-in-polygon test; the first grid that covers the point is the answer.
    """

    grids: tuple[Grid, ...]
    geoms: NDArray[np.object_]
    rank: NDArray[np.int64]  # lower is preferred
    tree: Any  # shapely.STRtree
    bounds: tuple[tuple[float, float, float, float], ...]
    extent: tuple[float, float, float, float]
    shape: tuple[int, int]  # cells along x, along y
    cells: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, grids: Sequence[Grid]) -> _Layer:
        ordered = sorted(grids, key=lambda g: (-LEVEL_DEPTH[g.level], round(g.area_m2), g.code))
        rank_of = {g.code: i for i, g in enumerate(ordered)}
        by_code = tuple(sorted(grids, key=lambda g: g.code))
        geoms = np.array([g.geometry for g in by_code], dtype=object)
        shapely.prepare(geoms)
        rank = np.array([rank_of[g.code] for g in by_code], dtype=np.int64)
        tree = shapely.STRtree(geoms)
        if not by_code:
            return cls((), geoms, rank, tree, (), (0.0, 0.0, 0.0, 0.0), (0, 0), ())
        all_bounds = shapely.bounds(geoms)
        x0, y0 = float(all_bounds[:, 0].min()), float(all_bounds[:, 1].min())
        x1, y1 = float(all_bounds[:, 2].max()), float(all_bounds[:, 3].max())
        side = math.sqrt(_CELLS_PER_GRID * len(by_code) / max((x1 - x0) * (y1 - y0), 1e-18))
        nx = max(1, min(_MAX_CELLS_PER_AXIS, math.ceil((x1 - x0) * side)))
        ny = max(1, min(_MAX_CELLS_PER_AXIS, math.ceil((y1 - y0) * side)))
        w, h = (x1 - x0) / nx, (y1 - y0) / ny
        cell_ids = np.arange(nx * ny)  # cell id = iy * nx + ix
        ix, iy = cell_ids % nx, cell_ids // nx
        boxes = shapely.box(
            x0 + ix * w - _CELL_PAD_DEG,
            y0 + iy * h - _CELL_PAD_DEG,
            x0 + (ix + 1) * w + _CELL_PAD_DEG,
            y0 + (iy + 1) * h + _CELL_PAD_DEG,
        )
        cell_idx, grid_idx = tree.query(boxes)
        order = np.lexsort((rank[grid_idx], cell_idx))
        cell_idx, grid_idx = cell_idx[order], grid_idx[order]
        splits = np.searchsorted(cell_idx, np.arange(nx * ny + 1))
        listed = grid_idx.tolist()
        cells = tuple(tuple(listed[splits[c] : splits[c + 1]]) for c in range(nx * ny))
        return cls(
            grids=by_code,
            geoms=geoms,
            rank=rank,
            tree=tree,
            bounds=tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in all_bounds),
            extent=(x0, y0, x1, y1),
            shape=(nx, ny),
            cells=cells,
        )

    def _cell(self, lon: float, lat: float) -> tuple[int, ...]:
        x0, y0, x1, y1 = self.extent
        # Written so that NaN fails too.
        if not self.grids or not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return ()
        nx, ny = self.shape
        ix = min(int((lon - x0) / (x1 - x0) * nx), nx - 1) if x1 > x0 else 0
        iy = min(int((lat - y0) / (y1 - y0) * ny), ny - 1) if y1 > y0 else 0
        return self.cells[iy * nx + ix]

    def _covers(self, i: int, lon: float, lat: float) -> bool:
        minx, miny, maxx, maxy = self.bounds[i]
        return minx <= lon <= maxx and miny <= lat <= maxy and bool(shapely.intersects_xy(self.geoms[i], lon, lat))

    def candidates(self, lon: float, lat: float) -> list[int]:
        """Every grid covering the point, best rank first."""
        return [i for i in self._cell(lon, lat) if self._covers(i, lon, lat)]

    def locate(self, lon: float, lat: float) -> Grid | None:
        for i in self._cell(lon, lat):
            if self._covers(i, lon, lat):
                return self.grids[i]
        return None

    def locate_many(self, lons: NDArray[np.float64], lats: NDArray[np.float64]) -> list[Grid | None]:
        result: list[Grid | None] = [None] * len(lons)
        if not self.grids or len(lons) == 0:
            return result
        inputs, tree_idx = self.tree.query(shapely.points(lons, lats))
        if len(inputs) == 0:
            return result
        hit = shapely.intersects_xy(self.geoms[tree_idx], lons[inputs], lats[inputs])
        inputs, tree_idx = inputs[hit], tree_idx[hit]
        # Sort by (input, rank); the first row of each input is its best grid.
        order = np.lexsort((self.rank[tree_idx], inputs))
        inputs, tree_idx = inputs[order], tree_idx[order]
        first = np.ones(len(inputs), dtype=bool)
        first[1:] = inputs[1:] != inputs[:-1]
        for i, t in zip(inputs[first].tolist(), tree_idx[first].tolist(), strict=True):
            result[i] = self.grids[t]
        return result


@dataclass(frozen=True, eq=False)
class GridIndex:
    base: _Layer
    units: _Layer

    @classmethod
    def build(cls, grids: Iterable[Grid]) -> GridIndex:
        all_grids = list(grids)
        codes = [g.code for g in all_grids]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate grid codes in index input")
        return cls(
            base=_Layer.build([g for g in all_grids if g.level in BASE_LEVELS]),
            units=_Layer.build([g for g in all_grids if g.level == "unit_grid"]),
        )

    def __len__(self) -> int:
        return len(self.base.grids) + len(self.units.grids)

    def locate(self, lon: float, lat: float) -> Grid | None:
        """The base grid for a WGS-84 point (see the module docstring for the rule), or None."""
        return self.base.locate(lon, lat)

    def locate_many(
        self, lons: Sequence[float] | NDArray[np.float64], lats: Sequence[float] | NDArray[np.float64]
    ) -> list[Grid | None]:
        """:meth:`locate` for many points at once (one vectorised tree query); same answers."""
        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("lons and lats must be 1-D and of equal length")
        return self.base.locate_many(x, y)

    def covering(self, lon: float, lat: float) -> tuple[Grid, ...]:
        """Every base grid covering the point, preferred first (deepest, smallest, lowest code)."""
        found = self.base.candidates(lon, lat)
        return tuple(self.base.grids[i] for i in found)

    def locate_unit_grid(self, lon: float, lat: float) -> Grid | None:
        """The 万米单元网格 covering the point (same tie rule), or None."""
        return self.units.locate(lon, lat)
