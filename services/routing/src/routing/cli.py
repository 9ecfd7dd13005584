"""``python -m routing import-directory --tenant T --grids FILE --directory FILE``."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from gridline_boot.db import create_engine, session_factory

from . import store
from .handlers import import_directory
from .settings import RoutingSettings


def import_directory_command(settings: RoutingSettings, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m routing import-directory")
    p.add_argument("--tenant", required=True)
    p.add_argument("--grids", required=True, type=Path, help="GeoJSON FeatureCollection (WGS-84)")
    p.add_argument("--directory", required=True, type=Path, help="directory bundle JSON")
    p.add_argument("--by", default="cli")
    args = p.parse_args(argv)
    grids = json.loads(args.grids.read_text(encoding="utf-8"))
    bundle = json.loads(args.directory.read_text(encoding="utf-8"))

    async def run() -> int:
        engine = create_engine(settings.database_url, schema=store.SCHEMA)
        try:
            async with session_factory(engine)() as s, s.begin():
                version, report = await import_directory(
                    s, tenant=args.tenant, grids=grids, bundle=bundle, imported_by=args.by
                )
        finally:
            await engine.dispose()
        for issue in report.issues:
            print(f"{issue.severity}: {issue.code} {issue.subject or ''} {issue.message}")
        if version is None:
            print("directory rejected: nothing imported")
            return 1
        print(f"imported directory version {version} for tenant {args.tenant}")
        return 0

    return asyncio.run(run())
