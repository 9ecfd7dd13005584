"""Every service's /metrics passes `promtool check metrics`, and the alert rules use only series the
running services expose (or Prometheus/blackbox/kube-state-metrics provide)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
import pytest

from .conftest import TENANT, post_report, promtool
from .promql import EXTERNAL, exposed_names, metric_names, recorded_names, rules
from .test_dashboards import dashboard_exprs

SERVICES = ("intake", "routing", "escalation", "notify")


@pytest.fixture(scope="module")
def scraped(services: Any) -> dict[str, str]:
    """/metrics of each service after one report has gone through, so labelled series have samples."""
    accepted = post_report(services)
    assert accepted.status_code == 201, accepted.text
    tid = accepted.json()["ticket_id"]
    deadline = time.monotonic() + 60
    url = f"{services.procs['notify'].url}/v1/tenants/{TENANT}/tickets/{tid}/notifications"
    while not any(n["status"] == "sent" for n in httpx.get(url, timeout=5).json()):
        assert time.monotonic() < deadline, "the report never produced a notification"
        time.sleep(0.3)
    return {name: httpx.get(services.procs[name].url + "/metrics", timeout=5).text for name in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_pass_promtool_check_metrics(scraped: dict[str, str], service: str) -> None:
    text = scraped[service]
    r = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, f"{service}: {r.stdout}{r.stderr}"
    assert "gridline_messages_produced_total" in text and "gridline_http_request_duration_seconds" in text


def test_every_series_in_the_alert_rules_is_exposed(scraped: dict[str, str]) -> None:
    exposed = exposed_names(scraped.values())
    used = {name for rule in rules() for name in metric_names(rule["expr"])}
    missing = {n for n in used if n not in exposed and n not in recorded_names() and not EXTERNAL.match(n)}
    assert not missing, f"rules use series no service exposes: {sorted(missing)}"
    assert {"notify_sends_total", "gridline_consumer_lag_messages", "intake_tickets_received_total"} <= exposed


def test_every_series_in_the_dashboards_is_exposed(scraped: dict[str, str]) -> None:
    exposed = exposed_names(scraped.values())
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    missing = {n for n in used if n not in exposed and n not in recorded_names() and not EXTERNAL.match(n)}
    assert not missing, f"dashboards use series no service exposes: {sorted(missing)}"
    assert len(used) >= 15
