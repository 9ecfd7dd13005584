"""Alertmanager: the compose config loads in Alertmanager's own parser, and every alert rule's
severity reaches the receiver docs/operations.md promises (critical → ops-oncall, the rest →
ops-default), checked with `amtool config routes test` against the real routing tree."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from .promql import ROOT, rules

CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
EXPECTED = {"critical": "ops-oncall", "warning": "ops-default"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    """amtool comes with Debian's `prometheus-alertmanager` package, which .ci/run installs."""
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool not found: apt-get install -y prometheus-alertmanager (.ci/run does this)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def alerts() -> list[dict[str, object]]:
    return [r for r in rules() if "alert" in r]


def test_config_is_valid_for_alertmanager() -> None:
    r = amtool("check-config", str(CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: str(r["alert"]))
def test_every_alert_reaches_the_receiver_for_its_severity(rule: dict[str, object]) -> None:
    labels = rule.get("labels") or {}
    assert isinstance(labels, dict)
    severity = labels.get("severity")
    assert severity in EXPECTED, f"{rule['alert']}: severity {severity!r} has no route"
    r = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={EXPECTED[str(severity)]}",
        f"alertname={rule['alert']}",
        f"severity={severity}",
        "service=intake",
    )
    assert r.returncode == 0, f"{rule['alert']} routed to {r.stdout.strip()!r}: {r.stderr.strip()}"


def test_inhibit_rules_name_real_alerts() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    names = {str(r["alert"]) for r in alerts()}
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            key, _, value = matcher.partition("=")
            if key != "alertname":
                continue
            pattern = value.lstrip("~").strip('"')
            assert any(re.fullmatch(pattern, n) for n in names), f"inhibit rule matches no alert: {matcher}"
