"""Point → grid: routing's in-memory GridIndex against PostGIS ``ST_Contains`` on a GiST index.

Both sides get the same polygons (the synthetic city of :mod:`routing.synthcity`, ≥ 20,000 基础网格
plus their 社区/街道/区) and the same random points, and must give identical answers (the deepest,
then smallest, then lowest-code grid containing the point — GridIndex's rule, written in SQL as
``ORDER BY depth DESC, area_key, code LIMIT 1``). Measured in one run, side by side:

- ``gridindex``: ``GridIndex.locate`` per point (what the consumer calls for one ticket);
- ``postgis``: one prepared ``ST_Contains`` query per point over asyncpg on localhost (what routing
  would do per ticket with PostGIS instead of the index);
- ``gridindex_batch`` / ``postgis_batch``: all points in one call (``locate_many`` / one ``unnest``
  + ``LATERAL`` query), for throughput only.

Every figure comes with the baseline from the same run; the ratio is reported. Results go to JSON
(``--out``). PostgreSQL comes from ``DATABASE_URL``; without it a throwaway cluster is started with
``tools/devstack.py --pg``. PostGIS must be installed in that cluster (Debian:
``apt-get install postgresql-15-postgis-3``); if ``CREATE EXTENSION postgis`` fails the run stops
with a clear message and exit code 3.

    .venv/bin/python bench/routing/bench_locate.py --out bench/routing/results/locate.json
    .venv/bin/python bench/routing/bench_locate.py --min-grids 500 --points 500 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import shapely

from routing.directory import LEVEL_DEPTH, load_geojson
from routing.gridindex import GridIndex
from routing.synthcity import generate

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "routing_bench"
TARGET_RATIO = 10.0
TARGET_P99_MS = 1.0
WARMUP = 2000


def percentiles(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p95_ms": round(float(np.percentile(a, 95)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "max_ms": round(float(a.max()), 4),
        "mean_ms": round(float(a.mean()), 4),
    }


def throughput(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


class PostgisMissing(Exception):
    pass


async def load_postgis(conn: asyncpg.Connection, grids: list[Any]) -> float:
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except asyncpg.PostgresError as exc:
        raise PostgisMissing(str(exc)) from exc
    started = time.perf_counter()
    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    await conn.execute(f"CREATE TABLE {SCHEMA}.staging (code text, depth int, area_key bigint, wkb bytea)")
    records = [(g.code, LEVEL_DEPTH[g.level], round(g.area_m2), shapely.to_wkb(g.geometry)) for g in grids]
    await conn.copy_records_to_table("staging", schema_name=SCHEMA, records=records)
    await conn.execute(
        f"""
        CREATE TABLE {SCHEMA}.grid AS
          SELECT code, depth, area_key, ST_GeomFromWKB(wkb, 4326)::geometry(Geometry, 4326) AS geom
          FROM {SCHEMA}.staging;
        CREATE INDEX grid_geom_gist ON {SCHEMA}.grid USING gist (geom);
        ANALYZE {SCHEMA}.grid;
        """
    )
    return time.perf_counter() - started


SINGLE = f"""
SELECT code FROM {SCHEMA}.grid
WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))
ORDER BY depth DESC, area_key, code LIMIT 1
"""
BATCH = f"""
SELECT p.i, g.code
FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(x, y, i)
LEFT JOIN LATERAL (
  SELECT code FROM {SCHEMA}.grid
  WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
  ORDER BY depth DESC, area_key, code LIMIT 1
) g ON true
ORDER BY p.i
"""


async def run_postgis(dsn: str, grids: list[Any], lons: list[float], lats: list[float]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        load_s = await load_postgis(conn, grids)
        version = await conn.fetchval("SELECT postgis_lib_version()")
        plan = await conn.fetch("EXPLAIN " + SINGLE, lons[0], lats[0])
        stmt = await conn.prepare(SINGLE)
        for k in range(min(WARMUP, len(lons))):
            await stmt.fetchval(lons[k], lats[k])
        answers: list[str | None] = []
        ns: list[int] = []
        started = time.perf_counter()
        for x, y in zip(lons, lats, strict=True):
            t0 = time.perf_counter_ns()
            answers.append(await stmt.fetchval(x, y))
            ns.append(time.perf_counter_ns() - t0)
        elapsed = time.perf_counter() - started
        batch_start = time.perf_counter()
        rows = await conn.fetch(BATCH, lons, lats)
        batch_s = time.perf_counter() - batch_start
        batch_answers = [r["code"] for r in rows]
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        await conn.close()
    return {
        "answers": answers,
        "batch_answers": batch_answers,
        "load_s": round(load_s, 2),
        "version": version,
        "uses_gist_index": any("grid_geom_gist" in r[0] for r in plan),
        "single": {"lookups_per_s": throughput(len(lons), elapsed), **percentiles(ns)},
        "batch": {"lookups_per_s": throughput(len(lons), batch_s), "seconds": round(batch_s, 3)},
    }


def run_gridindex(grids: list[Any], lons: list[float], lats: list[float]) -> dict[str, Any]:
    build_start = time.perf_counter()
    index = GridIndex.build(grids)
    build_s = time.perf_counter() - build_start
    for k in range(min(WARMUP, len(lons))):
        index.locate(lons[k], lats[k])
    answers: list[str | None] = []
    ns: list[int] = []
    locate = index.locate
    started = time.perf_counter()
    for x, y in zip(lons, lats, strict=True):
        t0 = time.perf_counter_ns()
        g = locate(x, y)
        ns.append(time.perf_counter_ns() - t0)
        answers.append(g.code if g is not None else None)
    elapsed = time.perf_counter() - started
    batch_start = time.perf_counter()
    many = index.locate_many(np.asarray(lons), np.asarray(lats))
    batch_s = time.perf_counter() - batch_start
    return {
        "answers": answers,
        "batch_answers": [g.code if g is not None else None for g in many],
        "build_s": round(build_s, 2),
        "single": {"lookups_per_s": throughput(len(lons), elapsed), **percentiles(ns)},
        "batch": {"lookups_per_s": throughput(len(lons), batch_s), "seconds": round(batch_s, 3)},
    }


def start_pg(workdir: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "devstack.py"), "--workdir", str(workdir), "up", "--pg", "--fast"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("export DATABASE_URL="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise RuntimeError(f"devstack printed no DATABASE_URL:\n{out}")


def stop_pg(workdir: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "devstack.py"), "--workdir", str(workdir), "down"], check=False
    )
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--min-grids", type=int, default=20000, help="基础网格 in the synthetic city (default 20000)")
    p.add_argument("--points", type=int, default=20000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    city = generate(args.min_grids, args.seed)
    grids, report = load_geojson(city.grids)
    if not report.ok:
        print(f"synthetic city failed validation: {report.codes('error')[:5]}", file=sys.stderr)
        return 2
    district = next(g for g in grids if g.level == "district").geometry
    minx, miny, maxx, maxy = district.bounds
    rng = np.random.default_rng(args.seed + 1)
    lons = rng.uniform(minx, maxx, args.points).tolist()
    lats = rng.uniform(miny, maxy, args.points).tolist()

    ours = run_gridindex(grids, lons, lats)
    workdir: Path | None = None
    dsn = os.environ.get("DATABASE_URL")
    try:
        if not dsn:
            workdir = Path(tempfile.mkdtemp(prefix="routing-bench-pg-"))
            dsn = start_pg(workdir)
        try:
            theirs = asyncio.run(run_postgis(dsn, grids, lons, lats))
        except PostgisMissing as exc:
            print(
                "PostGIS is not installed in this PostgreSQL cluster, so there is no baseline to compare with "
                f"({exc}). Install it (Debian: apt-get install -y postgresql-15-postgis-3) and run again.",
                file=sys.stderr,
            )
            return 3
    finally:
        if workdir is not None:
            stop_pg(workdir)

    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(ours["answers"], theirs["answers"], strict=True)) if a != b]
    batch_mismatches = sum(
        1
        for a, b, c, d in zip(
            ours["answers"], ours["batch_answers"], theirs["answers"], theirs["batch_answers"], strict=True
        )
        if not a == b == c == d
    )
    ratio = ours["single"]["lookups_per_s"] / theirs["single"]["lookups_per_s"]
    batch_ratio = ours["batch"]["lookups_per_s"] / theirs["batch"]["lookups_per_s"]
    levels: dict[str, int] = {}
    for g in grids:
        levels[g.level] = levels.get(g.level, 0) + 1
    result = {
        "benchmark": "routing point→grid lookup: GridIndex.locate vs PostGIS ST_Contains (GiST)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "city": {"seed": args.seed, "polygons": len(grids), "by_level": levels, "vertices_per_grid": 16},
        "points": args.points,
        "points_outside_every_grid": sum(a is None for a in ours["answers"]),
        "identical_answers": not mismatches and batch_mismatches == 0,
        "mismatches": len(mismatches),
        "mismatch_examples": mismatches[:5],
        "gridindex": {k: v for k, v in ours.items() if not k.endswith("answers")},
        "postgis": {k: v for k, v in theirs.items() if not k.endswith("answers")},
        "ratio_lookups_per_s": round(ratio, 1),
        "ratio_batch_lookups_per_s": round(batch_ratio, 1),
        "targets": {
            "ratio_at_least": TARGET_RATIO,
            "p99_ms_at_most": TARGET_P99_MS,
            "ratio_met": ratio >= TARGET_RATIO,
            "p99_met": ours["single"]["p99_ms"] <= TARGET_P99_MS,
        },
        "environment": {
            "python": platform.python_version(),
            "shapely": shapely.__version__,
            "geos": shapely.geos_version_string,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            # The machine is shared: the 1/5/15-minute load when the result was written, to read ratios by.
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "note": "PostGIS per-lookup times include the localhost round trip, as a service would pay it",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("identical_answers", "ratio_lookups_per_s", "targets")}))
    print(
        f"gridindex {ours['single']['lookups_per_s']:.0f}/s p99 {ours['single']['p99_ms']} ms; "
        f"postgis {theirs['single']['lookups_per_s']:.0f}/s p99 {theirs['single']['p99_ms']} ms; "
        f"ratio {ratio:.1f}x (batch {batch_ratio:.1f}x)"
    )
    return 0 if result["identical_answers"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
