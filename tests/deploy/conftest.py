"""The four services as processes on the session's broker and database (tests/conftest.py `stack`)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import stack as stackmod  # noqa: E402

TENANT = "330106"


def promtool() -> str:
    """promtool comes with Debian's `prometheus` package, which .ci/run installs."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install -y prometheus (.ci/run does this)")
    return path


@pytest.fixture(scope="module")
def services(stack: Any) -> Iterator[stackmod.Stack]:
    """Module-scoped on purpose: it shares consumer groups with tests/e2e's stack, so the two must
    never run at the same time (both would split the same partitions)."""
    log_dir = Path(tempfile.mkdtemp(prefix="gridline-deploy-"))
    s = stackmod.Stack(kafka=stack.kafka, database_url=stack.database_url, log_dir=log_dir)
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
    s.start_all()
    try:
        yield s
    finally:
        s.stop_all()


def post_report(s: stackmod.Stack, **overrides: Any) -> httpx.Response:
    body = {
        "tenant": TENANT,
        "category_code": "200102",
        "description": "德加公寓门口垃圾堆了三天没人清理",
        "location": {"lon": 120.1197, "lat": 30.2878, "crs": "gcj02"},
        "phone": "13800138999",
        **overrides,
    }
    return httpx.post(s.procs["intake"].url + "/v1/reports", json=body, timeout=10)
