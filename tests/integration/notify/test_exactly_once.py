"""Exactly-once effect of notify's SMS, end to end over real Kafka, PostgreSQL and both fake providers.

Every scenario asserts the same two things at the fakes: the message went out, and only once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from .conftest import NotifyRig

N_KILL = 8


def _phone(n: int) -> str:
    return f"139{int(time.time() * 1000) % 10**6:06d}{n:02d}"


def test_duplicate_events_send_one_message(rig: NotifyRig) -> None:
    env = rig.clock_started(rig.unit(_phone(1)))
    rig.publish(env, env, env)  # redelivery: the same event id three times
    note = rig.settled(str(env.data.ticket_id))
    assert note["status"] == "sent" and note["provider"] == "aliyun"
    time.sleep(1.0)  # room for a wrong second send to show up
    assert len(rig.sent(rig.aliyun, env.data.ticket_no)) == 1
    assert rig.sent(rig.tencent, env.data.ticket_no) == []
    assert len(rig.notifications(str(env.data.ticket_id))) == 1
    assert [a["outcome"] for a in rig.attempts(note["id"])] == ["sent"]


def test_server_errors_retry_then_fail_over_without_duplicates(rig: NotifyRig) -> None:
    rig.fault(rig.aliyun, kind="server_error", count=2)
    env = rig.clock_started(rig.unit(_phone(2)))
    rig.publish(env)
    note = rig.settled(str(env.data.ticket_id))
    assert (note["status"], note["provider"]) == ("sent", "tencent")
    attempts = rig.attempts(note["id"])
    assert [(a["provider"], a["outcome"], a["code"]) for a in attempts] == [
        ("aliyun", "retryable", "ServiceUnavailable"),
        ("aliyun", "retryable", "ServiceUnavailable"),
        ("tencent", "sent", "Ok"),
    ]
    assert rig.sent(rig.aliyun, env.data.ticket_no) == []
    (msg,) = rig.sent(rig.tencent, env.data.ticket_no)
    assert msg["params"][0] == env.data.ticket_no  # positional order from the template config
    assert (
        msg["out_id"] == attempts[-1]["provider_message_id"]
        or msg["provider_id"] == attempts[-1]["provider_message_id"]
    )


def test_timeouts_are_settled_by_query_before_failover(rig: NotifyRig) -> None:
    """The fake stalls past the client timeout without sending: QuerySendDetails proves it, then failover."""
    rig.fault(rig.aliyun, kind="stall", count=2, delay_s=1.5)
    env = rig.clock_started(rig.unit(_phone(3)))
    rig.publish(env)
    note = rig.settled(str(env.data.ticket_id), timeout=40)
    assert (note["status"], note["provider"]) == ("sent", "tencent")
    attempts = rig.attempts(note["id"])
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("aliyun", "not_sent"),
        ("aliyun", "not_sent"),
        ("tencent", "sent"),
    ]
    assert all(a["code"] == "settled.not_found" for a in attempts[:2])
    assert rig.sent(rig.aliyun, env.data.ticket_no) == []
    assert len(rig.sent(rig.tencent, env.data.ticket_no)) == 1


def test_timeout_after_a_real_send_is_settled_as_sent_not_resent(rig: NotifyRig) -> None:
    rig.fault(rig.aliyun, kind="delay", count=1, delay_s=2.0)  # sends, then answers too late
    env = rig.clock_started(rig.unit(_phone(4)))
    rig.publish(env)
    note = rig.settled(str(env.data.ticket_id), timeout=40)
    assert (note["status"], note["provider"]) == ("sent", "aliyun")
    assert [(a["outcome"], a["code"]) for a in rig.attempts(note["id"])] == [("sent", "settled.sent")]
    time.sleep(1.0)
    assert len(rig.sent(rig.aliyun, env.data.ticket_no)) == 1
    assert rig.sent(rig.tencent, env.data.ticket_no) == []


def test_flow_control_defers_instead_of_failing(rig: NotifyRig) -> None:
    """The fake allows 1/min per (sign, template, number): the second message waits, nothing is dropped."""
    unit = rig.unit(_phone(5))
    first, second = rig.clock_started(unit), rig.clock_started(unit)
    rig.publish(first)
    assert rig.settled(str(first.data.ticket_id))["status"] == "sent"
    rig.publish(second)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (note,) = rig.notifications(str(second.data.ticket_id)) or [{"attempts": 0}]
        if note["attempts"] >= 1 and note["status"] == "pending":
            break
        time.sleep(0.2)
    assert (note["status"], note["last_code"], note["provider"]) == ("pending", "isv.BUSINESS_LIMIT_CONTROL", "aliyun")
    attempts = rig.attempts(note["id"])
    assert [(a["provider"], a["outcome"]) for a in attempts] == [("aliyun", "retryable")]
    # Deferred by the minute window Aliyun named (触发分钟级流控), not failed over and not dropped.
    assert rig.sent(rig.tencent, second.data.ticket_no) == []
    assert note["next_attempt_at"] > attempts[0]["finished_at"]


def test_sigkill_mid_send_loses_nothing_and_sends_nothing_twice(rig: NotifyRig) -> None:
    """notify is killed while a provider call is in flight; a restart settles it from the provider's records."""
    rig.fault(rig.aliyun, kind="delay", count=1, delay_s=30)
    phones = [_phone(10 + i) for i in range(N_KILL)]
    envs = [rig.clock_started(rig.unit(p)) for p in phones]
    rig.publish(*envs)
    orders = [e.data.ticket_no for e in envs]
    deadline = time.monotonic() + 20
    while not any(rig.sent(rig.aliyun, o) for o in orders):  # the delayed call has reached the fake
        assert time.monotonic() < deadline, "no send reached the fake"
        time.sleep(0.1)
    assert rig.notify.kill(signal.SIGKILL) == -signal.SIGKILL
    httpx.delete(rig.aliyun.url + "/_fake/faults").raise_for_status()
    rig.notify.start()
    rig.notify.wait_ready("/readyz")
    for e in envs:
        note = rig.settled(str(e.data.ticket_id), timeout=60)
        assert note["status"] == "sent", note
    time.sleep(1.0)
    for o in orders:
        total = len(rig.sent(rig.aliyun, o)) + len(rig.sent(rig.tencent, o))
        assert total == 1, f"{o} sent {total} times"
    log = rig.notify.log.read_text(errors="replace")
    assert "settling them from provider records" in log
    assert not [p for p in phones if p in log], "a phone number reached the log in clear"


def _quiet_now() -> dict[str, str]:
    """A tenant quiet window that contains the present moment (Beijing time), ending in ~2 hours."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return {"quiet_start": start.strftime("%H:%M"), "quiet_end": end.strftime("%H:%M")}


def test_quiet_hours_defer_non_urgent_citizen_messages_and_never_drop_them(rig: NotifyRig) -> None:
    tenant = "330108"
    window = _quiet_now()
    r = httpx.put(f"{rig.notify.url}/v1/tenants/{tenant}/limits", json={**window, "per_recipient_day": 50})
    assert r.status_code == 200, r.text
    held = rig.received(_phone(20), tenant)  # a 12345 hotline order: can wait until morning
    urgent = rig.received(_phone(21), tenant, priority="urgent")
    own = rig.received(_phone(22), tenant, channel="citizen")  # the reporter is using the app right now
    rig.publish(held, urgent, own)
    assert rig.settled(str(urgent.data.ticket_id), tenant=tenant)["status"] == "sent"
    assert rig.settled(str(own.data.ticket_id), tenant=tenant)["status"] == "sent"
    note = rig.wait_note(str(held.data.ticket_id), lambda n: n["status"] == "pending", tenant=tenant)
    time.sleep(1.0)
    (note,) = rig.notifications(str(held.data.ticket_id), tenant)
    assert (note["status"], note["attempts"]) == ("pending", 0)
    due = datetime.fromisoformat(note["next_attempt_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert due.strftime("%H:%M") == window["quiet_end"] and due > datetime.now(UTC)
    assert rig.sent(rig.aliyun, held.data.ticket_no) == []


def test_per_recipient_rate_limit_defers_the_excess(rig: NotifyRig) -> None:
    tenant = "330109"
    r = httpx.put(f"{rig.notify.url}/v1/tenants/{tenant}/limits", json={"per_recipient_hour": 1})
    assert r.status_code == 200, r.text
    bad = httpx.put(f"{rig.notify.url}/v1/tenants/{tenant}/limits", json={"per_recipient_hour": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    phone = _phone(23)
    first = rig.clock_started(rig.unit(phone, tenant), tenant)
    second = rig.clock_started(rig.unit(phone, tenant), tenant)  # another unit, same liaison number
    rig.publish(first)
    assert rig.settled(str(first.data.ticket_id), tenant=tenant)["status"] == "sent"
    rig.publish(second)
    note = rig.wait_note(
        str(second.data.ticket_id),
        lambda n: n["status"] == "pending" and datetime.fromisoformat(n["next_attempt_at"]) > datetime.now(UTC),
        tenant=tenant,
    )
    assert note["attempts"] == 0  # deferred before any provider call
    wait = datetime.fromisoformat(note["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(minutes=55) < wait <= timedelta(hours=1)
    assert rig.sent(rig.aliyun, second.data.ticket_no) == [] and rig.sent(rig.tencent, second.data.ticket_no) == []


def test_delivery_receipts_from_both_providers_are_applied_once(rig: NotifyRig) -> None:
    """The fakes push SmsReport / the Tencent callback after each send; notify marks the message delivered."""
    plain = rig.clock_started(rig.unit(_phone(30)))
    rig.fault(rig.aliyun, kind="server_error", count=2)  # the next one goes out through Tencent
    over = rig.clock_started(rig.unit(_phone(31)))
    rig.publish(over)
    rig.settled(str(over.data.ticket_id))
    rig.publish(plain)
    for env, provider in ((plain, "aliyun"), (over, "tencent")):
        note = rig.wait_note(str(env.data.ticket_id), lambda n: n["delivery"] == "delivered")
        assert (note["status"], note["provider"]) == ("sent", provider) and note["delivered_at"]
    # Providers re-push: the same report again changes nothing; a FAIL for a delivered one does not demote it.
    (msg,) = rig.sent(rig.tencent, over.data.ticket_no)
    url = f"{rig.notify.url}/v1/receipts/tencent?token=it-receipts"
    fail = {"user_receive_time": "2026-11-22 12:00:00", "nationcode": "86", "mobile": "13900000000"}
    fail |= {"report_status": "FAIL", "errmsg": "MK:0001", "description": "失败", "sid": msg["provider_id"]}
    r = httpx.post(url, json=[fail])
    assert r.json() == {"result": 0, "errmsg": "OK"}
    assert rig.notifications(str(over.data.ticket_id))[0]["delivery"] == "delivered"
    unknown = httpx.post(url, json=[fail | {"sid": "5000:does-not-exist"}])
    assert unknown.status_code == 200  # stored unmatched; the provider must not re-push forever
    assert httpx.post(url, json={"sid": "x"}).json()["error"]["code"] == "invalid_receipt"
    assert httpx.post(url.replace("it-receipts", "wrong"), json=[]).json()["error"]["code"] == "bad_receipt_token"
    garbage = httpx.post(f"{rig.notify.url}/v1/receipts/aliyun?token=it-receipts", content=b"not json")
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_receipt"


def test_failed_notifications_are_replayed_from_the_dead_letter_store(rig: NotifyRig) -> None:
    tenant = "330110"
    rig.fault(rig.aliyun, kind="error", code="isv.TEMPLATE_PARAMS_ILLEGAL", message="模板变量中存在非法关键字")
    env = rig.clock_started(rig.unit(_phone(40), tenant), tenant)
    rig.publish(env)
    failed = rig.settled(str(env.data.ticket_id), tenant=tenant)
    assert (failed["status"], failed["last_code"]) == ("failed", "isv.TEMPLATE_PARAMS_ILLEGAL")
    assert rig.sent(rig.aliyun, env.data.ticket_no) == [] and rig.sent(rig.tencent, env.data.ticket_no) == []
    # (the template was fixed at the provider) — replay this tenant's failures of that kind
    r = subprocess.run(
        [sys.executable, "-m", "notify", "replay-failed", "--tenant", tenant, "--code", "isv.TEMPLATE_PARAMS_ILLEGAL"],
        env=rig.notify.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0 and r.stdout.startswith("1 failed"), r.stderr
    note = rig.wait_note(str(env.data.ticket_id), lambda n: n["status"] == "sent", tenant=tenant)
    assert [(a["outcome"], a["code"]) for a in rig.attempts(note["id"], tenant)] == [
        ("rejected", "isv.TEMPLATE_PARAMS_ILLEGAL"),
        ("sent", "OK"),
    ]
    assert len(rig.sent(rig.aliyun, env.data.ticket_no)) == 1


def test_a_tenants_own_template_is_checked_on_save_and_used(rig: NotifyRig) -> None:
    tenant = "330111"
    url = f"{rig.notify.url}/v1/tenants/{tenant}/templates/aliyun/ticket_assigned"
    bad = httpx.put(url, json={"code": "SMS_900000001", "text": "【某市】工单${order}", "variables": ["order"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "forbidden_content"
    good = httpx.put(url, json={"code": "SMS_900000001", "text": "工单${order}已派给贵单位", "variables": ["order"]})
    assert good.status_code == 200, good.text
    env = rig.clock_started(rig.unit(_phone(50), tenant), tenant)
    rig.publish(env)
    assert rig.settled(str(env.data.ticket_id), tenant=tenant)["status"] == "sent"
    (msg,) = rig.sent(rig.aliyun, env.data.ticket_no)
    assert msg["template"] == "SMS_900000001"  # the tenant's code, not the service default SMS_900000002
