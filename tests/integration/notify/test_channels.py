"""WeChat and WeCom channels, tenant rules and the WeChat → SMS fallback, end to end.

notify runs as a real process on real Kafka and PostgreSQL, beside three fake providers as
processes (Aliyun SMS, WeChat, WeCom). Every scenario checks at the fakes what went out, and that
nothing went out twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridline_fakes import wechat as fake_wechat
from gridline_fakes import wecom as fake_wecom

from .conftest import RECEIPT_TOKEN, ROOT, TENANT, NotifyRig, Proc, _prepare, stackmod

APPID, APPSECRET = next(iter(fake_wechat.DEFAULT_APPS.items()))
AGENT, CORPSECRET = next(iter(fake_wecom.DEFAULT_APPS.items()))
TEMPLATE = "TPL_TICKET_RECEIVED"


class Rig(NotifyRig):
    wechat: Proc
    wecom: Proc

    def get(self, proc: Proc, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = httpx.get(f"{proc.url}{path}", timeout=5).json()
        return out

    def wait_notes(
        self, ticket_id: str, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        notes: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                notes = self.notifications(ticket_id)
            except httpx.HTTPError:
                notes = []
            if ok(notes):
                return notes
            time.sleep(0.2)
        raise AssertionError(f"not reached in {timeout}s: {notes}\n{stackmod.tail(self.notify.log)}")

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.notify.url}/v1/tenants/{TENANT}{path}", json=body, timeout=5)

    def citizen(self, n: int, *, subscribed: bool) -> tuple[str, str]:
        """A phone with an openid bound in notify; subscribed = one one-time credit at WeChat."""
        # E.164, as intake seals it in contact tokens: the binding is keyed by the normalised number.
        phone = f"+86137{int(time.time() * 1000) % 10**6:06d}{n:02d}"
        openid = "o" + uuid.uuid4().hex[:27]
        self.api("PUT", "/citizens/wechat", {"phone": phone, "openid": openid}).raise_for_status()
        if subscribed:
            grant = {"openid": openid, "template_id": TEMPLATE, "count": 1}
            httpx.post(f"{self.wechat.url}/_fake/subscriptions", json=grant).raise_for_status()
        else:
            httpx.post(f"{self.wechat.url}/_fake/openids", json={"openids": [openid]}).raise_for_status()
        return phone, openid

    def staff_unit(self, n: int, userid: str | None) -> str:
        """A unit whose liaison has a phone and, optionally, a WeCom userid."""
        code = self.unit(f"136{int(time.time() * 1000) % 10**6:06d}{n:02d}")
        if userid:
            self.api("PUT", f"/recipients/unit/{code}/channels/wecom", {"address": userid}).raise_for_status()
        return code

    def wecom_user(self, userid: str) -> None:
        httpx.post(f"{self.wecom.url}/_fake/users", json={"users": [userid]}).raise_for_status()

    def sms(self, order: str) -> list[dict[str, Any]]:
        return self.sent(self.aliyun, order)

    def wechat_sent(self, openid: str) -> list[dict[str, Any]]:
        return [m for m in self.get(self.wechat, "/_fake/messages") if m["openid"] == openid]

    def wechat_refused(self, openid: str) -> list[dict[str, Any]]:
        return [m for m in self.get(self.wechat, "/_fake/refused") if m["openid"] == openid]

    def wecom_sent(self, userid: str) -> list[dict[str, Any]]:
        return [m for m in self.get(self.wecom, "/_fake/messages") if m["userid"] == userid]


def _env(stack: Any, db_url: str, topic: str, run: str, ports: dict[str, int], transit: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "DATABASE_URL": db_url,
        "HTTP_PORT": str(ports["notify"]),
        "PII_KEY": stackmod.new_key("n1"),
        "PII_TRANSIT_KEY": transit,
        "CONSUMER_GROUP": f"notify-ch-{run}",
        "CONSUME_TOPICS": json.dumps([topic]),
        "SMS_PROVIDER_BASE_URL": f"http://127.0.0.1:{ports['aliyun']}",
        "SMS_TEMPLATES": json.dumps({"ticket_received": "SMS_900000001", "ticket_assigned": "SMS_900000002"}),
        "RECEIPT_TOKEN": RECEIPT_TOKEN,
        "SMS_TIMEOUT_S": "1.0",
        "WECHAT_APPID": APPID,
        "WECHAT_SECRET": APPSECRET,
        "WECHAT_BASE_URL": f"http://127.0.0.1:{ports['wechat']}",
        "WECOM_CORPID": fake_wecom.DEFAULT_CORP,
        "WECOM_CORPSECRET": CORPSECRET,
        "WECOM_AGENTID": str(AGENT),
        "WECOM_BASE_URL": f"http://127.0.0.1:{ports['wecom']}",
        "SENDER_BACKOFF_BASE_S": "0.05",
        "SENDER_BACKOFF_CAP_S": "0.2",
        "SENDER_POLL_INTERVAL_S": "0.1",
        "SETTLE_GRACE_S": "1",
        "SETTLE_RETRY_S": "0.5",
        "INTERRUPTED_AFTER_S": "3",
        "RELAY_POLL_INTERVAL_S": "0.5",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def rig(stack: Any) -> Iterator[Rig]:
    run = uuid.uuid4().hex[:8]
    db, topic = f"notify_ch_{run}", f"it-notify-ch-{run}.events.v1"
    asyncio.run(_prepare(stack.kafka, stack.database_url, db, topic))
    db_url = stack.database_url.rsplit("/", 1)[0] + "/" + db
    log_dir = Path(tempfile.mkdtemp(prefix="gridline-notify-ch-"))
    py = sys.executable
    ports = {n: stackmod.free_port() for n in ("notify", "aliyun", "wechat", "wecom")}
    fake = (py, "-m", "gridline_fakes")
    aliyun = Proc(
        "aliyun",
        ports["aliyun"],
        [
            *(*fake, "aliyun-sms", "--port", str(ports["aliyun"])),
            *("--template", "SMS_900000001:order", "--template", "SMS_900000002:order,due"),
            *("--per-day", "1000", "--log-level", "warning"),
        ],
        dict(os.environ),
        log_dir / "aliyun.log",
    )
    wechat = Proc(
        "wechat",
        ports["wechat"],
        [*fake, "wechat", "--port", str(ports["wechat"]), "--log-level", "warning"],
        dict(os.environ),
        log_dir / "wechat.log",
    )
    wecom = Proc(
        "wecom",
        ports["wecom"],
        [*fake, "wecom", "--port", str(ports["wecom"]), "--log-level", "warning"],
        dict(os.environ),
        log_dir / "wecom.log",
    )
    transit = stackmod.new_key("t1")
    env = _env(stack, db_url, topic, run, ports, transit)
    notify = Proc("notify", ports["notify"], [py, "-m", "notify", "run"], env, log_dir / "notify.log")
    migrated = subprocess.run(
        [py, "-m", "notify", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    for p in (aliyun, wechat, wecom, notify):
        p.start()
    try:
        for p in (aliyun, wechat, wecom):
            p.wait_ready("/_fake/messages")
        notify.wait_ready("/readyz")
        r = Rig(stack.kafka, topic, notify, aliyun, aliyun, transit)
        r.wechat, r.wecom = wechat, wecom
        yield r
    finally:
        codes = {p.name: p.kill(signal.SIGTERM) for p in (notify, aliyun, wechat, wecom) if p.popen is not None}
        assert codes["notify"] in (0, -15), f"unclean notify shutdown; logs in {log_dir}"


def test_subscribed_citizen_gets_the_mini_program_message_once_and_no_sms(rig: Rig) -> None:
    phone, openid = rig.citizen(1, subscribed=True)
    env = rig.received(phone, TENANT, channel="citizen")
    rig.publish(env, env)  # redelivered
    (note,) = rig.wait_notes(str(env.data.ticket_id), lambda ns: len(ns) == 1 and ns[0]["status"] == "sent")
    assert note["provider"] == "wechat" and "****" in note["masked_recipient"]
    time.sleep(1.0)  # room for a wrong second send
    (msg,) = rig.wechat_sent(openid)
    assert msg["template_id"] == TEMPLATE and msg["data"]["character_string1"] == env.data.ticket_no
    assert msg["page"] == f"pages/order/detail?no={env.data.ticket_no}"
    assert rig.sms(env.data.ticket_no) == []
    assert [(a["provider"], a["outcome"]) for a in rig.attempts(note["id"])] == [("wechat", "sent")]


def test_not_subscribed_falls_back_to_sms_exactly_once(rig: Rig) -> None:
    phone, openid = rig.citizen(2, subscribed=False)
    env = rig.received(phone, TENANT, channel="citizen")
    rig.publish(env, env, env)
    notes = rig.wait_notes(
        str(env.data.ticket_id), lambda ns: len(ns) == 2 and {n["status"] for n in ns} == {"failed", "sent"}
    )
    wechat_note = next(n for n in notes if n["provider"] == "wechat")
    sms_note = next(n for n in notes if n["provider"] == "aliyun")
    assert (wechat_note["status"], wechat_note["last_code"]) == ("failed", "43101")
    assert sms_note["masked_recipient"] == phone[3:6] + "****" + phone[-4:]
    time.sleep(1.0)
    assert len(rig.sms(env.data.ticket_no)) == 1
    assert len(rig.wechat_refused(openid)) == 1 and rig.wechat_sent(openid) == []
    assert [a["code"] for a in rig.attempts(wechat_note["id"])] == ["43101"]
    assert [a["outcome"] for a in rig.attempts(sms_note["id"])] == ["sent"]


def test_killed_mid_fallback_sms_after_restart_sends_nothing_twice(rig: Rig) -> None:
    """SIGKILL while the fallback SMS is at the provider: after restart one WeChat refusal, one SMS."""
    phone, openid = rig.citizen(3, subscribed=False)
    rig.fault(rig.aliyun, kind="delay", delay_s=4.0)  # the SMS goes out, the answer comes late
    env = rig.received(phone, TENANT, channel="citizen")
    rig.publish(env)
    deadline = time.monotonic() + 30
    while not rig.sms(env.data.ticket_no):
        assert time.monotonic() < deadline, stackmod.tail(rig.notify.log)
        time.sleep(0.1)
    rig.notify.kill(signal.SIGKILL)
    rig.notify.start()
    rig.notify.wait_ready("/readyz")
    notes = rig.wait_notes(
        str(env.data.ticket_id), lambda ns: len(ns) == 2 and {n["status"] for n in ns} == {"failed", "sent"}, 60
    )
    assert {n["provider"] for n in notes} == {"wechat", "aliyun"}
    time.sleep(1.0)
    assert len(rig.sms(env.data.ticket_no)) == 1
    assert len(rig.wechat_refused(openid)) == 1


def test_staff_with_wecom_get_wecom_and_unknown_members_fall_back_to_sms(rig: Rig) -> None:
    rig.wecom_user("liaison-a")
    on_wecom = rig.clock_started(rig.staff_unit(4, "Liaison-A"))
    not_member = rig.clock_started(rig.staff_unit(5, "left-the-corp"))
    rig.publish(on_wecom, not_member, on_wecom)
    (note,) = rig.wait_notes(str(on_wecom.data.ticket_id), lambda ns: len(ns) == 1 and ns[0]["status"] == "sent")
    assert note["provider"] == "wecom"
    notes = rig.wait_notes(
        str(not_member.data.ticket_id), lambda ns: len(ns) == 2 and {n["status"] for n in ns} == {"failed", "sent"}
    )
    assert {(n["provider"], n["last_code"]) for n in notes} >= {("wecom", "81013")}
    time.sleep(1.0)
    (msg,) = rig.wecom_sent("liaison-a")
    assert on_wecom.data.ticket_no in msg["text"]["content"]
    assert rig.sms(on_wecom.data.ticket_no) == []
    assert len(rig.sms(not_member.data.ticket_no)) == 1


def test_tenant_rules_and_preferences_choose_the_channels(rig: Rig) -> None:
    rig.wecom_user("liaison-b")
    path = "/rules/sla.clock_started/unit_liaison"
    bad = rig.api("PUT", path, {"steps": [{"channel": "wechat", "template": "ticket_assigned"}]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "channel_not_for_role"
    assert "工作人员" in bad.json()["error"]["message"]
    unit = rig.staff_unit(6, "liaison-b")
    try:
        ok = rig.api("PUT", path, {"steps": [{"channel": "sms", "template": "ticket_assigned"}]})
        assert ok.status_code == 200, ok.text
        listed = rig.api("GET", "/rules").json()
        mine = next(r for r in listed if (r["event_type"], r["role"]) == ("sla.clock_started", "unit_liaison"))
        assert mine["source"] == "tenant" and [s["channel"] for s in mine["steps"]] == ["sms"]
        sms_only = rig.clock_started(unit)
        rig.publish(sms_only)
        (note,) = rig.wait_notes(str(sms_only.data.ticket_id), lambda ns: len(ns) == 1 and ns[0]["status"] == "sent")
        assert note["provider"] == "aliyun" and rig.wecom_sent("liaison-b") == []

        rig.api("PUT", path, {"steps": []}).raise_for_status()
        silenced = rig.clock_started(unit)
        # A marker on the same Kafka key (same partition, consumed after it) that the rule does not touch.
        phone, _ = rig.citizen(7, subscribed=True)
        marker = rig.received(phone, TENANT, channel="citizen").model_copy(update={"subject": silenced.subject})
        rig.publish(silenced, marker)
        rig.wait_notes(str(marker.data.ticket_id), lambda ns: len(ns) == 1 and ns[0]["status"] == "sent")
        assert rig.notifications(str(silenced.data.ticket_id)) == []
    finally:
        assert rig.api("DELETE", path).status_code == 204
    # Back to the default (WeCom first), but this liaison prefers texts.
    rig.api("PUT", f"/recipients/unit/{unit}/preferences", {"channels": ["sms"]}).raise_for_status()
    preferred = rig.clock_started(unit)
    rig.publish(preferred)
    (note,) = rig.wait_notes(str(preferred.data.ticket_id), lambda ns: len(ns) == 1 and ns[0]["status"] == "sent")
    assert note["provider"] == "aliyun"
    assert rig.wecom_sent("liaison-b") == []


def test_a_tenant_rule_adds_the_unit_head_to_new_orders(rig: Rig) -> None:
    unit = rig.staff_unit(8, None)
    head_phone = f"135{int(time.time() * 1000) % 10**6:06d}08"
    rig.api("PUT", f"/recipients/unit_head/{unit}", {"name": "科长", "phone": head_phone}).raise_for_status()
    path = "/rules/sla.clock_started/unit_head"
    rig.api("PUT", path, {"steps": [{"channel": "sms", "template": "ticket_assigned"}]}).raise_for_status()
    try:
        env = rig.clock_started(unit)
        rig.publish(env, env)
        notes = rig.wait_notes(
            str(env.data.ticket_id), lambda ns: len(ns) == 2 and all(n["status"] == "sent" for n in ns)
        )
        assert {n["masked_recipient"][-4:] for n in notes} >= {head_phone[-4:]}
        time.sleep(1.0)
        assert len(rig.sms(env.data.ticket_no)) == 2  # the liaison and the head, once each
    finally:
        assert rig.api("DELETE", path).status_code == 204
