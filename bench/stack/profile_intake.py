"""Where intake's CPU goes per report: the real app in process (httpx ASGI transport, api role) on
a fresh database, N reports one at a time, CPU per report (time.process_time) and cProfile's top
entries, beside the bare FastAPI endpoint (bare_app.py) driven by the same client.

    set -a; source .devstack/env; set +a
    .venv/bin/python bench/stack/profile_intake.py [--reports 2000] [--top 25] [--out FILE.json]

Needs DATABASE_URL (PostgreSQL) and KAFKA_BOOTSTRAP_SERVERS (only for readiness; the api role
publishes nothing here). Not a throughput figure: one request at a time, no HTTP server, client in
the same process — it isolates the service's own CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))


def _key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


def body(i: int, base: int) -> dict[str, Any]:
    return {
        "tenant": "330106",
        "category_code": "200102",
        "description": "德加公寓门口垃圾堆了三天没人清理",
        "location": {"lon": 120.12, "lat": 30.28, "crs": "gcj02"},
        "phone": f"138{(base + i) % 100_000_000:08d}",
    }


async def drive(app: Any, n: int, prof: cProfile.Profile | None) -> float:
    """CPU ms per request for n POSTs after a warm-up."""
    base = 10_000_000 + uuid.uuid4().int % 80_000_000
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        for i in range(50):
            r = await c.post("/v1/reports", json=body(i, base))
            assert r.status_code == 201, r.text
        # The client's own cost, measured alone, is subtracted below.
        t0 = time.process_time()
        if prof:
            prof.enable()
        for i in range(50, 50 + n):
            r = await c.post("/v1/reports", json=body(i, base))
            assert r.status_code == 201, r.text
        if prof:
            prof.disable()
        return (time.process_time() - t0) * 1000 / n


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reports", type=int, default=2000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    base = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    name = f"intake_prof_{uuid.uuid4().hex[:8]}"
    url = base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {**os.environ, "DATABASE_URL": url, "PII_KEY": "x", "PII_TRANSIT_KEY": "x"}
        migrate = [sys.executable, "-m", "intake", "migrate"]
        await asyncio.to_thread(subprocess.run, migrate, env=env, cwd=ROOT, check=True, capture_output=True)
        from intake.app import create_app
        from intake.settings import IntakeSettings

        settings = IntakeSettings(
            database_url=url,
            kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            pii_key=_key("i1"),
            pii_transit_key=_key("t1"),
            roles="api",
            environment="test",
            storage_dir=tempfile.mkdtemp(prefix="intake-prof-"),
            reports_per_ip_per_hour=10_000_000,  # one client address for every report
            log_level="WARNING",
        )
        app = create_app(settings)
        import bare_app

        prof = cProfile.Profile()
        async with app.router.lifespan_context(app):
            plain = await drive(app, args.reports, None)
            profiled = await drive(app, min(args.reports, 1000), prof)
        bare = await drive(bare_app.app, args.reports, None)
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(args.top)
        t = io.StringIO()
        pstats.Stats(prof, stream=t).sort_stats("tottime").print_stats(args.top)
        result = {
            "reports": args.reports,
            "cpu_ms_per_report": round(plain, 3),
            "cpu_ms_per_bare_request": round(bare, 3),
            "ratio": round(plain / bare, 2),
            "cpu_ms_per_report_under_cprofile": round(profiled, 3),
            "load_avg": os.getloadavg(),
        }
        print(json.dumps(result, indent=2))
        print(s.getvalue()[-6000:])
        print(t.getvalue()[-6000:])
        if args.out:
            args.out.write_text(
                json.dumps({**result, "by_cumulative": s.getvalue(), "by_tottime": t.getvalue()}, indent=2)
            )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
