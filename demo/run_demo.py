"""``make demo``: run Gridline on a demo city (杭州市西湖区, tenant 330106) and show what happens.

Starts the four services as separate processes plus a fake Aliyun SMS provider, imports the demo
city's grids and 派单目录, registers the units' SMS numbers, pushes sample reports through intake and
prints, for each, where it went, its deadline, the SMS sent and how long each step took. Then it
keeps running (Ctrl-C stops everything gracefully) so you can look around; ``--exit`` stops at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import stack as stackmod  # noqa: E402

from gridline_geo.crs import wgs84_to_bd09, wgs84_to_gcj02  # noqa: E402

TENANT = "330106"
UNIT_PHONES = {
    "330106-CGJ": "13900000001",
    "330106-SCJGJ": "13900000002",
    "330106-SCJGJ-WX": "13900000003",
    "330106-ZJJ": "13900000004",
    "330106-STHJ": "13900000005",
    "330106-SW": "13900000006",
    "330106004": "13900000011",
    "330106005": "13900000012",
    "330106006": "13900000013",
    "330106004001": "13900000021",
    "330106004002": "13900000022",
    "330106005001": "13900000023",
    "330106005002": "13900000024",
    "330106006001": "13900000025",
    "330106006002": "13900000026",
}


def samples() -> list[tuple[str, dict[str, Any]]]:
    g = wgs84_to_gcj02
    b = wgs84_to_bd09
    return [
        (
            "随手拍 GCJ-02 定位：德加暴露垃圾",
            {
                "category_code": "200102",
                "description": "德加公寓门口垃圾堆了三天没人清理",
                "location": _loc(g(120.115, 30.29), "gcj02"),
                "phone": "13800138001",
            },
        ),
        (
            "随手拍 BD-09 定位：翠苑一区小广告",
            {
                "category_code": "200201",
                "description": "楼道里贴满了非法小广告",
                "location": _loc(b(120.133, 30.29), "bd09"),
                "phone": "13800138002",
            },
        ),
        (
            "只报地址：文三路施工扰民",
            {
                "category_code": "200301",
                "description": "夜里十一点还在打桩，吵得睡不着",
                "address": "杭州市西湖区文三路135号",
                "phone": "13800138003",
                "priority": "urgent",
            },
        ),
        (
            "保密举报：食品安全",
            {
                "category_code": "300101",
                "description": "面馆后厨卫生很差，老鼠乱窜",
                "location": _loc(g(120.105, 30.275), "gcj02"),
                "phone": "13800138004",
                "demand_type": "report",
                "confidential": True,
            },
        ),
        (
            "匿名：学院路路灯不亮",
            {
                "category_code": "100118",
                "description": "学院路一排路灯晚上都不亮",
                "address": "学院路12号",
                "anonymous": True,
            },
        ),
        (
            "辖区外定位：转人工派单",
            {
                "category_code": "200102",
                "description": "路边有垃圾",
                "location": _loc((121.47, 31.23), "wgs84"),
                "phone": "13800138005",
            },
        ),
    ]


def _loc(point: tuple[float, float], crs: str) -> dict[str, Any]:
    return {"lon": round(point[0], 7), "lat": round(point[1], 7), "crs": crs}


def wait_for(probe: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--exit", action="store_true", help="stop everything after the summary")
    args = p.parse_args()
    kafka, db = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if not kafka or not db:
        print("KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL must be set (make demo does it)", file=sys.stderr)
        return 2
    log_dir = ROOT / "var" / "demo-logs"
    s = stackmod.Stack(kafka=kafka, database_url=db, log_dir=log_dir)
    print("· creating topics and migrating the four schemas")
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
        "--by",
        "demo",
    )
    print("· " + (r.stdout.strip().splitlines() or [r.stderr])[-1])
    print("· starting fake SMS provider, intake, routing, escalation, notify (one process each)")
    s.start_all()
    stop = False

    def on_signal(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with httpx.Client(timeout=10) as c:
            for unit, phone in UNIT_PHONES.items():
                c.put(
                    f"{s.procs['notify'].url}/v1/tenants/{TENANT}/recipients/unit/{unit}",
                    json={"name": unit, "phone": phone},
                ).raise_for_status()
            rows = [run_sample(c, s, title, body) for title, body in samples()]
        print_summary(s, rows)
        if not args.exit:
            print("\nRunning. Ctrl-C stops every process gracefully.")
            while not stop:
                time.sleep(0.5)
    finally:
        codes = s.stop_all()
        print("stopped: " + ", ".join(f"{k} exit {v}" for k, v in codes.items()))
    return 0


def run_sample(c: httpx.Client, s: stackmod.Stack, title: str, body: dict[str, Any]) -> dict[str, Any]:
    intake, routing = s.procs["intake"].url, s.procs["routing"].url
    escalation, notify = s.procs["escalation"].url, s.procs["notify"].url
    t0 = time.monotonic()
    r = c.post(f"{intake}/v1/reports", json={"tenant": TENANT, **body})
    accepted_ms = (time.monotonic() - t0) * 1000
    if r.status_code != 201:
        return {"title": title, "error": r.text}
    a = r.json()
    tid = a["ticket_id"]

    def settled() -> Any:
        t = c.get(f"{intake}/v1/tenants/{TENANT}/tickets/{tid}", headers=s.staff_headers(TENANT)).json()
        return t if t["status"] in ("dispatched", "awaiting_manual", "merged") else None

    t = wait_for(settled) or {}
    routed_ms = (time.monotonic() - t0) * 1000
    r = c.get(f"{routing}/v1/tenants/{TENANT}/tickets/{tid}/decisions", headers=s.staff_headers(TENANT, "dispatcher"))
    decisions = r.json() if r.status_code == 200 else []
    clock = (
        wait_for(
            lambda: (x := c.get(f"{escalation}/v1/tenants/{TENANT}/clocks/{tid}")).status_code == 200 and x.json(),
            timeout=10,
        )
        if t.get("status") == "dispatched"
        else None
    )
    expected = (1 if body.get("phone") and not body.get("anonymous") else 0) + (1 if clock else 0)
    notes = (
        wait_for(
            lambda: (
                (n := c.get(f"{notify}/v1/tenants/{TENANT}/tickets/{tid}/notifications").json())
                and len(n) >= expected
                and all(x["status"] not in ("pending", "sending") for x in n)
                and n
            ),
            timeout=15,
        )
        or []
    )
    notified_ms = (time.monotonic() - t0) * 1000
    return {
        "title": title,
        "accepted": a,
        "ticket": t,
        "decision": decisions[-1] if decisions else None,
        "clock": clock,
        "notes": notes,
        "ms": (accepted_ms, routed_ms, notified_ms),
    }


def print_summary(s: stackmod.Stack, rows: list[dict[str, Any]]) -> None:
    print("\n=== What happened to each report ===")
    for row in rows:
        print(f"\n■ {row['title']}")
        if "error" in row:
            print(f"  rejected: {row['error']}")
            continue
        a, t, d = row["accepted"], row["ticket"], row["decision"] or {}
        print(f"  工单编号 {a['ticket_no']}  查询码 {a['query_code']}  status → {t.get('status')}")
        if t.get("status") == "dispatched":
            print(f"  派至 {t['unit_code']}  网格 {t.get('grid_code')}  规则 {d.get('rule_id')}")
        elif t.get("status") == "merged":
            print("  并单: 与一张未办结的同类工单重复（同一地点、时间窗内），诉求人跟随主单进度")
        else:
            print(f"  转人工派单: {d.get('reason_code')}")
        for step in (d.get("trail") or [])[:4]:
            print(f"    · {step}")
        if row["clock"]:
            ck = row["clock"]
            print(f"  时限 {ck['policy_key']}: 预警 {ck['warn_at']}  到期 {ck['due_at']}")
        for n in row["notes"]:
            print(f"  短信 {n['template']} → {n['recipient_kind']} {n['masked_recipient']}: {n['status']}")
        reporter = t.get("reporter") or {}
        print(f"  单位可见的诉求人: {reporter.get('masked_phone') or '（保密/匿名，不显示）'}")
        acc, routed, notified = row["ms"]
        print(f"  耗时: accepted {acc:.0f} ms, settled {routed:.0f} ms, notified {notified:.0f} ms")
    print("\n=== Where to look ===")
    for name in stackmod.SERVICES:
        url = s.procs[name].url
        print(f"  {name:<11} {url}/docs   {url}/metrics   {url}/readyz")
    print(f"  fake SMS    {s.procs['fake-sms'].url}/_fake/messages  (what the 'provider' accepted)")
    print(f"  logs        {s.log_dir}/<service>.log (JSON, with ticket and correlation ids)")
    print("  dead letters: .venv/bin/python -m gridline_messaging.dlq list intake   (or routing, escalation, notify)")


if __name__ == "__main__":
    sys.exit(main())
