"""A report goes all the way: intake → routing → intake → escalation → notify → SMS at the fake provider.

Four services, each its own OS process, talking only through Kafka; driven and observed over HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from gridline_geo.crs import wgs84_to_gcj02

from .conftest import TENANT, UNIT_PHONES

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def submit(running: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(running.procs["intake"].url + "/v1/reports", json=body, timeout=10)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def ticket(running: Any, ref: str) -> dict[str, Any]:
    r = httpx.get(
        f"{running.procs['intake'].url}/v1/tenants/{TENANT}/tickets/{ref}",
        headers=running.staff_headers(TENANT),
        timeout=10,
    )
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def test_citizen_report_is_dispatched_clocked_and_notified(running: Any) -> None:
    lon, lat = wgs84_to_gcj02(120.115, 30.29)  # what wx.getLocation returns for a point in 德加第2网格
    phone = "13800138123"
    accepted = submit(
        running,
        {
            "tenant": TENANT,
            "category_code": "200102",
            "description": "德加公寓门口垃圾堆了三天没人清理",
            "location": {"lon": lon, "lat": lat, "crs": "gcj02"},
            "phone": phone,
        },
    )
    tid = accepted["ticket_id"]
    assert accepted["ticket_no"].startswith(f"{TENANT}-") and len(accepted["query_code"]) == 8

    t = eventually(lambda: (x := ticket(running, tid))["status"] == "dispatched" and x, what="dispatch")
    assert t["unit_code"] == "330106005" and t["grid_code"] == "330106005001002"
    assert abs(t["location"]["lon"] - 120.115) < 1e-6 and t["location"]["original"]["crs"] == "gcj02"
    assert t["reporter"]["masked_phone"] == "138****8123" and t["reporter"]["contact_token"] is None

    why = httpx.get(
        f"{running.procs['routing'].url}/v1/tenants/{TENANT}/tickets/{tid}/decisions",
        headers=running.staff_headers(TENANT, "dispatcher"),
    ).json()
    assert why[0]["outcome"] == "assigned" and why[0]["rule_id"] == "R0210" and why[0]["trail"]

    clock = eventually(
        lambda: (
            (r := httpx.get(f"{running.procs['escalation'].url}/v1/tenants/{TENANT}/clocks/{tid}")).status_code == 200
            and r.json()
        ),
        what="SLA clock",
    )
    assert clock["policy_key"] == "urgent-1wd" and clock["colour"] == "green" and clock["unit_code"] == "330106005"

    notes = eventually(
        lambda: (
            (r := httpx.get(f"{running.procs['notify'].url}/v1/tenants/{TENANT}/tickets/{tid}/notifications").json())
            and len(r) == 2
            and all(n["status"] == "sent" for n in r)
            and r
        ),
        what="both SMS sent",
    )
    assert {n["template"] for n in notes} == {"ticket_received", "ticket_assigned"}
    assert {n["masked_recipient"] for n in notes} == {"138****8123", "139****0005"}

    sent = httpx.get(running.procs["fake-sms"].url + "/_fake/messages").json()
    mine = [m for m in sent if m["params"].get("order") == accepted["ticket_no"]]
    assert sorted(m["phone"] for m in mine) == sorted([phone, UNIT_PHONES["330106005"]])
    assert len(mine) == 2, "each SMS exactly once"

    history = httpx.get(
        f"{running.procs['intake'].url}/v1/tenants/{TENANT}/tickets/{tid}/history",
        headers=running.staff_headers(TENANT),
    ).json()
    assert [h["to_status"] for h in history] == ["received", "dispatched"]

    progress = httpx.get(
        f"{running.procs['intake'].url}/v1/tenants/{TENANT}/progress/{accepted['ticket_no']}",
        headers={"X-Query-Code": accepted["query_code"]},
    )
    assert progress.status_code == 200 and progress.json()["status"] == "dispatched"
    wrong = httpx.get(
        f"{running.procs['intake'].url}/v1/tenants/{TENANT}/progress/{accepted['ticket_no']}",
        headers={"X-Query-Code": "00000000"},
    )
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "ticket_not_found"


def test_department_only_category_goes_to_the_department(running: Any) -> None:
    lon, lat = wgs84_to_gcj02(120.105, 30.275)  # 文鼎苑, 文新街道
    accepted = submit(
        running,
        {
            "tenant": TENANT,
            "category_code": "300101",
            "description": "面馆后厨卫生很差",
            "location": {"lon": lon, "lat": lat, "crs": "gcj02"},
            "confidential": True,
            "phone": "13800138124",
        },
    )
    t = eventually(
        lambda: (x := ticket(running, accepted["ticket_id"]))["status"] == "dispatched" and x, what="dispatch"
    )
    assert t["unit_code"] == "330106-SCJGJ-WX"
    assert t["reporter"]["masked_phone"] is None, "a confidential reporter is never shown to the unit"


def test_unlocatable_report_waits_for_a_dispatcher(running: Any) -> None:
    accepted = submit(
        running,
        {
            "tenant": TENANT,
            "category_code": "200102",
            "description": "有垃圾",
            "location": {"lon": 121.5, "lat": 31.2, "crs": "wgs84"},
        },
    )
    t = eventually(
        lambda: (x := ticket(running, accepted["ticket_id"]))["status"] == "awaiting_manual" and x, what="manual queue"
    )
    assert t["unit_code"] is None
    decisions = f"{running.procs['routing'].url}/v1/tenants/{TENANT}/tickets/{accepted['ticket_id']}/decisions"
    assert httpx.get(decisions).status_code == 401  # the dispatcher's API needs a staff token
    why = httpx.get(decisions, headers=running.staff_headers(TENANT, "dispatcher"))
    assert why.json()[0]["outcome"] == "needs_manual"


def test_bad_input_gets_stable_codes_never_500(running: Any) -> None:
    url = running.procs["intake"].url + "/v1/reports"
    cases = [
        (
            {"tenant": "abc", "category_code": "200102", "description": "xx", "address": "文三路1号"},
            422,
            "invalid_request",
        ),
        ({"tenant": TENANT, "category_code": "200102", "description": "xx"}, 422, "location_required"),
        (
            {"tenant": TENANT, "category_code": "200102", "description": "xx", "address": "a", "phone": "12345"},
            422,
            "invalid_phone",
        ),
        (
            {
                "tenant": TENANT,
                "category_code": "200102",
                "description": "xx",
                "location": {"lon": 500, "lat": 30, "crs": "gcj02"},
            },
            422,
            "invalid_request",
        ),
    ]
    for body, status, code in cases:
        r = httpx.post(url, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = httpx.get(
        f"{running.procs['intake'].url}/v1/tenants/{TENANT}/tickets/{uuid.uuid4()}",
        headers=running.staff_headers(TENANT),
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "ticket_not_found"


def test_phone_numbers_never_reach_logs_in_clear(running: Any) -> None:
    # Runs after the reports above (pytest keeps file order); every process's log is checked.
    for proc in running.procs.values():
        if proc.name == "fake-sms":
            continue
        text = proc.log.read_text(errors="replace")
        for digits in ("13800138123", "13800138124", "13900000005", "13900000006"):
            assert digits not in text, f"{digits} in clear in {proc.name}'s log"


def test_every_process_serves_health_and_metrics(running: Any) -> None:
    for name in ("intake", "routing", "escalation", "notify"):
        url = running.procs[name].url
        assert httpx.get(url + "/healthz").status_code == 200
        ready = httpx.get(url + "/readyz").json()
        assert ready["status"] == "ready", ready
        metrics = httpx.get(url + "/metrics").text
        for family in ("gridline_outbox_pending_messages", "gridline_messages_produced_total"):
            assert family in metrics, f"{name} lacks {family}"
    assert "gridline_consumer_lag_messages" in httpx.get(running.procs["routing"].url + "/metrics").text
