"""Grafana dashboards: generated files current, well-formed, every query valid PromQL (checked by
promtool through a synthetic rule file). Metric names are checked against live services in
test_metrics_exposition.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .conftest import promtool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def dashboard_exprs() -> list[str]:
    return [t["expr"] for d in dashboards().values() for p in d["panels"] for t in p["targets"]]


def test_generated_dashboards_are_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr


def test_dashboards_are_well_formed() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    uid = ds["datasources"][0]["uid"]
    ds_list = dashboards()
    assert set(ds_list) == {"pipeline.json", "sla.json", "quality.json", "notifications.json"}
    assert len({d["uid"] for d in ds_list.values()}) == len(ds_list)
    for name, d in ds_list.items():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in d["panels"]:
            assert p["datasource"]["uid"] == uid and p["targets"], (name, p["title"])
            assert all(t["expr"].strip() for t in p["targets"])


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {"name": "dashboards", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]}
        ]
    }
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    r = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
