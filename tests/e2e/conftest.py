from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import stack as stackmod  # noqa: E402

TENANT = "330106"
UNIT_PHONES = {"330106005": "13900000005", "330106-SCJGJ-WX": "13900000006"}


@pytest.fixture(scope="session")
def running(stack: Any) -> Iterator[stackmod.Stack]:
    """The four services as separate processes on the session's broker and database, with the demo city."""
    log_dir = Path(tempfile.mkdtemp(prefix="gridline-e2e-"))
    # A database of its own per session: tickets left open by an earlier run on a reused stack would
    # otherwise be found as duplicates (一事多报) of this run's reports and merged, not dispatched.
    db_url = _fresh_database(stack.database_url)
    s = stackmod.Stack(kafka=stack.kafka, database_url=db_url, log_dir=log_dir)
    s.create_topics()
    s.migrate()
    r = s.run_cli(
        "routing",
        "import-directory",
        "--tenant",
        TENANT,
        "--grids",
        str(ROOT / "demo/city/grids.geojson"),
        "--directory",
        str(ROOT / "demo/city/directory.json"),
    )
    assert r.returncode == 0, r.stderr
    try:
        s.start_all()  # inside the try: a service that fails to start must not leave the others running
        with httpx.Client(base_url=s.procs["notify"].url) as c:
            for unit, phone in UNIT_PHONES.items():
                c.put(
                    f"/v1/tenants/{TENANT}/recipients/unit/{unit}", json={"name": unit, "phone": phone}
                ).raise_for_status()
        yield s
    finally:
        codes = s.stop_all()
        bad = {k: v for k, v in codes.items() if v not in (0, -15)}
        assert not bad, f"unclean shutdown: {bad}; logs in {log_dir}"


def _fresh_database(url: str) -> str:
    base = url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"e2e_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return base.rsplit("/", 1)[0] + "/" + name


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
