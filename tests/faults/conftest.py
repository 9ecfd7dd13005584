"""A dedicated broker, database and four-service stack for the fault tier.

The tier kills and restarts Kafka and PostgreSQL, so it never touches the session's shared `stack`
(tests/conftest.py): it starts its own with devstack in a private workdir and removes it afterwards.
Sizes are reduced for CI and can be raised: FAULTS_RATE (reports/s, default 5), FAULTS_SECONDS
(load duration per scenario, default 6), FAULTS_RECOVERY_S (stated recovery bound, default 90).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import devstack
import httpx
import pytest
import stack as stackmod

from .harness import TENANT, UNIT, UNIT_PHONE

ROOT = Path(__file__).resolve().parents[2]
RATE = float(os.environ.get("FAULTS_RATE", "5"))
SECONDS = float(os.environ.get("FAULTS_SECONDS", "6"))
LIMITS_OFF = {"PER_RECIPIENT_DAY": "1000000", "QUIET_START": "00:00", "QUIET_END": "00:00"}
RECOVERY_S = float(os.environ.get("FAULTS_RECOVERY_S", "90"))


@dataclass
class FaultStack:
    services: stackmod.Stack
    kafka: devstack.KafkaHandle
    pg: devstack.PgHandle


@pytest.fixture(scope="package")
def faults() -> Iterator[FaultStack]:
    workdir = Path(tempfile.mkdtemp(prefix="gridline-faults-"))
    kafka = devstack.start_kafka(ROOT, workdir=workdir)
    try:
        pg = devstack.start_postgres(ROOT, workdir=workdir)
    except BaseException:
        devstack.stop_kafka(kafka)
        raise
    s = stackmod.Stack(
        kafka=kafka.bootstrap,
        database_url=pg.url,
        log_dir=Path(tempfile.mkdtemp(prefix="gridline-faults-logs-")),
        # The synthetic reports all stand on one spot; with 一事多报 detection on, routing would merge
        # them. Duplicate detection has its own tests; here every report must go its whole way.
        # One unit receives every report's SMS: lift notify's per-recipient daily cap (50) and its
        # quiet hours (which would hold citizens' SMS at night), or CI at night would see them wait.
        # The load generator is one client IP standing for many citizens: lift intake's per-IP limit
        # on unsigned reports (60/h), which would otherwise answer 429 from the second scenario on.
        extra_env={"DUPLICATES_ENABLED": "false", "REPORTS_PER_IP_PER_HOUR": "1000000000", **LIMITS_OFF},
    )
    fs = FaultStack(s, kafka, pg)  # tests replace the handles when they restart Kafka or PostgreSQL
    try:
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
        httpx.put(
            f"{s.procs['notify'].url}/v1/tenants/{TENANT}/recipients/unit/{UNIT}",
            json={"name": UNIT, "phone": UNIT_PHONE},
            timeout=10,
        ).raise_for_status()
        yield fs
    finally:
        s.stop_all()
        devstack.stop_kafka(fs.kafka)
        devstack.stop_postgres(fs.pg)
        shutil.rmtree(workdir, ignore_errors=True)
