"""Generate Gridline's Grafana dashboards (JSON, provisioned by docker-compose).

    .venv/bin/python deploy/grafana/generate.py [--check]

Written as code so every panel's PromQL is reviewable in one place and tests/deploy can check
that each metric it names is exposed by the services. Dashboards: pipeline health, SLA,
service quality (HTTP), notifications.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}


def panel(title: str, exprs: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries") -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
        "targets": [
            {"refId": chr(65 + i), "expr": e, "legendFormat": legend, "datasource": DS}
            for i, (e, legend) in enumerate(exprs)
        ],
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    laid = []
    for i, p in enumerate(panels):
        laid.append({**p, "id": i + 1, "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8}})
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["gridline"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": laid,
    }


def q(p: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({p}, sum by ({by}, le) (rate({metric}_bucket{selector}[5m])))"


PIPELINE = dashboard(
    "gridline-pipeline",
    "Gridline · pipeline health",
    "Throughput, latency, consumer lag, outboxes and dead letters of the four services.",
    [
        panel(
            "Reports accepted /s by channel",
            [("sum by (channel) (rate(intake_tickets_received_total[1m]))", "{{channel}}")],
            "reqps",
        ),
        panel(
            "Messages consumed /s by service and outcome",
            [("sum by (service, outcome) (rate(gridline_messages_consumed_total[1m]))", "{{service}} {{outcome}}")],
            "ops",
        ),
        panel(
            "Messages produced /s by topic",
            [("sum by (topic) (rate(gridline_messages_produced_total[1m]))", "{{topic}}")],
            "ops",
        ),
        panel(
            "Event age at consume p99",
            [(q(0.99, "gridline_event_age_at_consume_seconds", "service"), "{{service}}")],
            "s",
        ),
        panel(
            "Consumer lag by service and topic",
            [("sum by (service, topic) (gridline_consumer_lag_messages)", "{{service}} {{topic}}")],
        ),
        panel(
            "Handler duration p95 by event type",
            [(q(0.95, "gridline_handler_duration_seconds", "service, type"), "{{service}} {{type}}")],
            "s",
        ),
        panel(
            "Outbox pending and oldest age",
            [
                ("max by (service) (gridline_outbox_pending_messages)", "{{service}} pending"),
                ("max by (service) (gridline_outbox_oldest_pending_age_seconds)", "{{service}} oldest s"),
            ],
        ),
        panel(
            "Dead letters (10 min) by service and reason",
            [("sum by (service, reason) (increase(gridline_dead_letters_total[10m]))", "{{service}} {{reason}}")],
        ),
        panel(
            "Failures /s by service and stage",
            [("sum by (service, stage) (rate(gridline_messages_failed_total[5m]))", "{{service}} {{stage}}")],
            "ops",
        ),
        panel(
            "Routing decisions /s by outcome",
            [("sum by (outcome) (rate(routing_decisions_total[5m]))", "{{outcome}}")],
            "ops",
        ),
    ],
)

SLA = dashboard(
    "gridline-sla",
    "Gridline · SLA",
    "SLA clocks: open by colour and ladder level, 超期未结, milestones as events flow, timer activity.",
    [
        panel(
            "Open handling clocks by colour",
            [('sum by (colour) (escalation_open_clocks{kind="handle"})', "{{colour}}")],
        ),
        panel(
            "Open sign clocks by colour",
            [('sum by (colour) (escalation_open_clocks{kind="sign"})', "{{colour}}")],
        ),
        panel(
            "Escalations by ladder level (open clocks)",
            [('sum by (level) (escalation_open_clocks{level!="none"})', "{{level}}")],
        ),
        panel(
            "超期未结 by tenant",
            [("sum by (tenant) (escalation_overdue_open_clocks)", "{{tenant}}")],
        ),
        panel(
            "SLA events consumed /15 min by type",
            [
                (
                    "max by (type) (sum by (service, type) (increase("
                    'gridline_messages_consumed_total{type=~"sla[.].*", outcome="processed"}[15m])))',
                    "{{type}}",
                )
            ],
        ),
        panel(
            "Breaches /15 min against the day's average",
            [
                ("gridline:sla_breaches:increase15m", "last 15 min"),
                ("gridline:sla_breaches:increase1d / 96", "day's average per 15 min"),
            ],
        ),
        panel("Due clocks processed /s", [("rate(escalation_clock_ticks_total[5m])", "ticks")], "ops"),
        panel(
            "Timer lag (due → fired) p50/p99",
            [
                (
                    f"histogram_quantile({p}, sum by (le) (rate(escalation_timer_lag_seconds_bucket[5m])))",
                    f"p{int(p * 100)}",
                )
                for p in (0.5, 0.99)
            ],
            "s",
        ),
        panel("Calendar gaps (1 h)", [("increase(escalation_calendar_gap_errors_total[1h])", "gaps")]),
    ],
)

QUALITY = dashboard(
    "gridline-quality",
    "Gridline · service quality",
    "三率 (响应率, 解决率, 满意率) and the composite score of the month's 红黑榜 units; "
    "what citizens and units experience at the HTTP edge.",
    [
        panel(
            "三率 by unit (this month, 红黑榜 units)",
            [
                (
                    'max by (tenant, unit, rate) (escalation_unit_rate{rate=~"response|resolution|satisfaction"})',
                    "{{unit}} {{rate}}",
                )
            ],
            "percentunit",
        ),
        panel(
            "Composite score by unit (this month, 红黑榜 units)",
            [('max by (tenant, unit) (escalation_unit_rate{rate="score"})', "{{unit}}")],
        ),
        panel(
            "按时签收率 / 按期办结率 by unit",
            [
                (
                    'max by (tenant, unit, rate) (escalation_unit_rate{rate=~"on_time_sign|on_time_close"})',
                    "{{unit}} {{rate}}",
                )
            ],
            "percentunit",
        ),
        panel(
            "Request latency p99 by service",
            [(q(0.99, "gridline_http_request_duration_seconds", "job"), "{{job}}")],
            "s",
        ),
        panel(
            "Report acceptance latency p50/p99",
            [
                (
                    q(p, "gridline_http_request_duration_seconds", "job", '{job="intake", method="POST"}'),
                    f"p{int(p * 100)}",
                )
                for p in (0.5, 0.99)
            ],
            "s",
        ),
        panel(
            "Requests /s by service and status",
            [("sum by (job, status) (rate(gridline_http_request_duration_seconds_count[1m]))", "{{job}} {{status}}")],
            "reqps",
        ),
        panel(
            "5xx ratio by service",
            [
                (
                    'sum by (job) (rate(gridline_http_request_duration_seconds_count{status="5xx"}[5m]))'
                    " / sum by (job) (rate(gridline_http_request_duration_seconds_count[5m]))",
                    "{{job}}",
                )
            ],
            "percentunit",
        ),
        panel("Ready (blackbox /readyz)", [('probe_success{job="gridline-readyz"}', "{{instance}}")]),
        panel("Up", [('up{job=~"intake|routing|escalation|notify"}', "{{job}}")]),
    ],
)

NOTIFY = dashboard(
    "gridline-notifications",
    "Gridline · notifications",
    "SMS and WeChat sends by channel, provider and outcome; failure ratio; ambiguous sends.",
    [
        panel(
            "Sends /s by channel, provider, outcome",
            [
                (
                    "sum by (channel, provider, outcome) (rate(notify_sends_total[1m]))",
                    "{{channel}} {{provider}} {{outcome}}",
                )
            ],
            "ops",
        ),
        panel(
            "Failure ratio by provider",
            [("gridline:notify_failure_ratio:rate5m", "{{channel}} {{provider}}")],
            "percentunit",
        ),
        panel("Ambiguous sends (1 h)", [("increase(notify_ambiguous_total[1h])", "ambiguous")]),
        panel(
            "Notification events consumed /s",
            [
                (
                    'sum by (type) (rate(gridline_messages_consumed_total{service="notify", outcome="processed"}[5m]))',
                    "{{type}}",
                )
            ],
            "ops",
        ),
    ],
)

DASHBOARDS = {"pipeline.json": PIPELINE, "sla.json": SLA, "quality.json": QUALITY, "notifications.json": NOTIFY}


def render(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for name, d in DASHBOARDS.items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != render(d):
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(render(d), encoding="utf-8")
    if stale:
        print("out of date (run deploy/grafana/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
