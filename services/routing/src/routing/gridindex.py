"""Point → grid lookup over one directory version, in memory (shapely ``STRtree``).

**Which grid a point belongs to.** Among the base grids (district, street, community, grid) that
*cover* the point — boundary included, so a point on an edge is never "nowhere" — the answer is the
deepest level (a 基础网格 if one covers it, else the 社区, else the 街道 …), then the smallest area
(in whole m², so that floating-point noise between two equal grids does not decide), then the lowest
code. A point exactly on the edge two sibling grids share therefore always resolves to the same one:
the smaller grid, or on equal areas the one with the lower code. The order is precomputed as one
integer rank per grid, so a lookup is a bounding-box query plus exact point-in-polygon tests on the
few candidates (``shapely.intersects_xy`` on prepared polygons), then a minimum.

万米单元网格 (``unit_grid``) are a separate layer with their own tree (:meth:`GridIndex.locate_unit_grid`);
they never shadow base grids.

Immutable after :meth:`GridIndex.build`; safe to share between coroutines and threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from .directory import BASE_LEVELS, LEVEL_DEPTH, Grid


@dataclass(frozen=True, eq=False)
class _Layer:
    grids: tuple[Grid, ...]
    geoms: NDArray[np.object_]
    rank: NDArray[np.int64]  # lower is preferred
    tree: Any  # shapely.STRtree

    @classmethod
    def build(cls, grids: Sequence[Grid]) -> _Layer:
        ordered = sorted(grids, key=lambda g: (-LEVEL_DEPTH[g.level], round(g.area_m2), g.code))
        rank = {g.code: i for i, g in enumerate(ordered)}
        by_code = tuple(sorted(grids, key=lambda g: g.code))
        geoms = np.array([g.geometry for g in by_code], dtype=object)
        shapely.prepare(geoms)
        return cls(
            grids=by_code,
            geoms=geoms,
            rank=np.array([rank[g.code] for g in by_code], dtype=np.int64),
            tree=shapely.STRtree(geoms),
        )

    def candidates(self, lon: float, lat: float) -> list[int]:
        if not self.grids:
            return []
        idx = self.tree.query(shapely.points(lon, lat))
        if len(idx) == 0:
            return []
        hit = shapely.intersects_xy(self.geoms[idx], lon, lat)
        return [int(i) for i in idx[hit]]

    def locate(self, lon: float, lat: float) -> Grid | None:
        found = self.candidates(lon, lat)
        if not found:
            return None
        return self.grids[min(found, key=lambda i: int(self.rank[i]))]

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
        return tuple(self.base.grids[i] for i in sorted(found, key=lambda i: int(self.base.rank[i])))

    def locate_unit_grid(self, lon: float, lat: float) -> Grid | None:
        """The 万米单元网格 covering the point (same tie rule), or None."""
        return self.units.locate(lon, lat)
