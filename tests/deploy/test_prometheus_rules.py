"""Alert rules: valid, every alert unit-tested with `promtool test rules`, every runbook link resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import promtool
from .promql import EXTERNAL, ROOT, RULES_DIR, metric_names, recorded_names, rules

TESTS_DIR = Path(__file__).parent / "promtool"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*_test.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_is_valid(path: Path) -> None:
    r = run("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    r = run("test", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_prometheus_config_is_valid() -> None:
    r = run("check", "config", "--syntax-only", str(ROOT / "deploy/prometheus/prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rule_file_has_a_test_file_and_every_alert_is_tested() -> None:
    tested: set[str] = set()
    covered_files: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        covered_files |= {Path(f).name for f in doc["rule_files"]}
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):  # a test that only shows silence proves nothing on its own
                    tested.add(check["alertname"])
    assert {p.name for p in RULE_FILES} <= covered_files
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert alerts - tested == set(), "alerts without a firing promtool test"
    assert len(alerts) >= 15


def test_every_alert_has_severity_summary_and_a_runbook_that_exists() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        doc, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert doc == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no runbook section {anchor}"


def test_rules_use_only_known_series_kinds() -> None:
    """Names here are either ours (gridline_*, <service>_*), recorded by the rules, or external."""
    ours = re.compile(r"^(gridline|intake|routing|escalation|notify)_\w+$")
    for rule in rules():
        for name in metric_names(rule["expr"]):
            assert ours.match(name) or name in recorded_names() or EXTERNAL.match(name), (rule.get("alert"), name)


def test_metric_name_reader() -> None:
    expr = (
        'sum by (service, le) (rate(gridline_x_bucket{job="a", le="+Inf"}[5m])) > 0.5 and on (channel) '
        'count by (channel) (gridline:ratio:rate5m < 0.5) unless up{job=~"a|b"} offset 5m'
    )
    assert metric_names(expr) == {"gridline_x_bucket", "gridline:ratio:rate5m", "up"}
