"""12345 sync-back end to end: real Kafka, PostgreSQL, notify as a process, the fake 12345 platform.

Each scenario asserts at the fake platform: every status arrived, once per (event, order), in order.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from gridline_contracts.envelope import Envelope
from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import (
    OrderOrigin,
    ReporterRef,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketReceivedV1,
    TicketRepliedV1,
    TicketSignedV1,
)

from .conftest import ROOT, TENANT, Proc, _prepare, stackmod

SECRET = "it-hotline-secret-000001"
API_KEY = "gridline-it"


@dataclass
class Rig:
    kafka: str
    topic: str
    notify: Proc
    platform: Proc
    aliyun: Proc

    def endpoint(self, integration: str, url: str) -> None:
        r = httpx.put(
            f"{self.notify.url}/v1/tenants/{TENANT}/syncback/{integration}",
            json={"url": url, "api_key": API_KEY, "secret": SECRET},
        )
        r.raise_for_status()
        assert "secret" not in r.json()

    def publish(self, *envelopes: Envelope[Any]) -> None:
        async def go() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.kafka, enable_idempotence=True)
            await producer.start()
            try:
                for env in envelopes:
                    await producer.send_and_wait(
                        self.topic, value=env.body(), key=env.subject.encode(), headers=env.headers()
                    )
            finally:
                await producer.stop()

        asyncio.run(go())

    def fault(self, **fault: Any) -> None:
        httpx.post(f"{self.platform.url}/_fake/faults", json=fault).raise_for_status()

    def received(self, order_no: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(f"{self.platform.url}/_fake/received").json()
        return [m for m in items if m["order_no"] == order_no]

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = httpx.get(f"{self.platform.url}/_fake/stats").json()
        return out

    def pushes(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.notify.url}/v1/tenants/{TENANT}/tickets/{ticket_id}/syncback", timeout=5)
        r.raise_for_status()
        out: list[dict[str, Any]] = r.json()
        return out

    def wait(self, what: str, ok: Callable[[], bool], timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ok():
                    return
            except (httpx.HTTPError, IndexError):  # not up yet / not queued yet
                pass
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout}s\n{stackmod.tail(self.notify.log)}")


class Order:
    """One 12345 order's lifecycle as intake would publish it."""

    def __init__(self, integration: str = "hotline-hz") -> None:
        self.ticket_id = uuid.uuid4()
        self.ticket_no = f"{TENANT}-SB-{self.ticket_id.hex[:10]}"
        self.external_id = f"GD{uuid.uuid4().hex[:12]}"
        self.integration = integration
        self.at = datetime.now(UTC)

    def _env(self, data: Any) -> Envelope[Any]:
        sid = str(self.ticket_id)
        return Envelope(source="intake", tenant=TENANT, subject=sid, correlation_id=sid, data=data)

    def received(self) -> Envelope[Any]:
        return self._env(
            TicketReceivedV1(
                ticket_id=self.ticket_id,
                ticket_no=self.ticket_no,
                channel="hotline",
                category_code="200102",
                description="占道经营",
                reported_at=self.at,
                received_at=self.at,
                reporter=ReporterRef(),  # no contact token: no SMS receipt, only the sync-back
                origin=OrderOrigin(integration=self.integration, external_id=self.external_id),
            )
        )

    def _t(self, cls: Any, frm: str, to: str, minutes: int, **extra: Any) -> Envelope[Any]:
        return self._env(
            cls(
                ticket_id=self.ticket_id,
                ticket_no=self.ticket_no,
                from_status=frm,
                to_status=to,
                actor_role="unit",
                actor="U-1",
                at=self.at + timedelta(minutes=minutes),
                unit_code="U-1",
                **extra,
            )
        )

    def dispatched(self) -> Envelope[Any]:
        return self._env(
            TicketDispatchedV1(
                ticket_id=self.ticket_id,
                ticket_no=self.ticket_no,
                category_code="200102",
                unit_code="U-1",
                sla_policy_key="standard-5wd",
                dispatched_at=self.at,
                reporter=ReporterRef(),
            )
        )

    def signed(self) -> Envelope[Any]:
        return self._t(TicketSignedV1, "dispatched", "accepted", 1)

    def replied(self) -> Envelope[Any]:
        return self._t(TicketRepliedV1, "accepted", "replied", 2, reply="已清理占道摊点")

    def closed(self) -> Envelope[Any]:
        return self._t(TicketClosedV1, "pending_callback", "closed", 3, satisfaction="satisfied", resolved=True)

    def lifecycle(self) -> list[Envelope[Any]]:
        return [self.received(), self.dispatched(), self.signed(), self.replied(), self.closed()]


STATUSES = ["received", "dispatched", "accepted", "replied", "closed"]
N = len(STATUSES)


def _assert_in_order_once(rig: Rig, order: Order, statuses: list[str]) -> list[dict[str, Any]]:
    got = rig.received(order.external_id)
    assert [m["status"] for m in got] == statuses
    seqs = [m["sequence"] for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({m["idempotency_key"] for m in got}) == len(got)
    assert all(m["api_key"] == API_KEY for m in got)
    return got


@pytest.fixture(scope="module")
def rig(stack: Any) -> Iterator[Rig]:
    run = uuid.uuid4().hex[:8]
    db, topic = f"notify_sb_{run}", f"it-notify-sb-{run}.tickets.v1"
    asyncio.run(_prepare(stack.kafka, stack.database_url, db, topic))
    db_url = stack.database_url.rsplit("/", 1)[0] + "/" + db
    log_dir = Path(tempfile.mkdtemp(prefix="gridline-notify-sb-"))
    py = sys.executable
    ports = {n: stackmod.free_port() for n in ("notify", "platform", "aliyun")}
    platform = Proc(
        "platform",
        ports["platform"],
        [
            *(py, "-m", "gridline_fakes", "hotline12345", "--port", str(ports["platform"])),
            *("--key", f"{API_KEY}:{SECRET}", "--log-level", "warning"),
        ],
        dict(os.environ),
        log_dir / "platform.log",
    )
    aliyun = Proc(
        "aliyun",
        ports["aliyun"],
        [
            *(py, "-m", "gridline_fakes", "aliyun-sms", "--port", str(ports["aliyun"])),
            *("--template", "SMS_900000002:order,due", "--log-level", "warning"),
        ],
        dict(os.environ),
        log_dir / "aliyun.log",
    )
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "DATABASE_URL": db_url,
        "HTTP_PORT": str(ports["notify"]),
        "PII_KEY": stackmod.new_key("n1"),
        "PII_TRANSIT_KEY": stackmod.new_key("t1"),
        "CONSUMER_GROUP": f"notify-sb-{run}",
        "CONSUME_TOPICS": json.dumps([topic]),
        "SMS_PROVIDER_BASE_URL": aliyun.url,
        "SMS_TEMPLATES": json.dumps({"ticket_assigned": "SMS_900000002"}),
        "SMS_TIMEOUT_S": "1.0",
        "SYNCBACK_TIMEOUT_S": "1.0",  # lease = 2 × timeout + 5 s
        "SYNCBACK_BACKOFF_BASE_S": "0.1",
        "SYNCBACK_BACKOFF_CAP_S": "0.5",
        "SYNCBACK_POLL_INTERVAL_S": "0.1",
        "SENDER_POLL_INTERVAL_S": "0.1",
        "RELAY_POLL_INTERVAL_S": "0.5",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    notify = Proc("notify", ports["notify"], [py, "-m", "notify", "run"], env, log_dir / "notify.log")
    migrated = subprocess.run(
        [py, "-m", "notify", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    for p in (platform, aliyun, notify):
        p.start()
    try:
        platform.wait_ready("/_fake/stats")
        aliyun.wait_ready("/_fake/messages")
        notify.wait_ready("/readyz")
        r = Rig(stack.kafka, topic, notify, platform, aliyun)
        r.endpoint("hotline-hz", platform.url + "/callback")
        yield r
    finally:
        codes = {p.name: p.kill(signal.SIGTERM) for p in (notify, platform, aliyun) if p.popen is not None}
        assert codes["notify"] in (0, -15), f"unclean notify shutdown; logs in {log_dir}"


def test_lifecycle_is_pushed_in_order_signed_and_once(rig: Rig) -> None:
    order = Order()
    envs = order.lifecycle()
    rig.publish(*envs, envs[1], envs[2])  # redelivered events queue nothing more
    rig.wait("every push", lambda: len(rig.received(order.external_id)) >= N)
    time.sleep(1.0)  # room for a wrong extra push to show up
    got = _assert_in_order_once(rig, order, STATUSES)
    assert got[0]["body"]["ticket_no"] == order.ticket_no and got[0]["body"]["status_name"] == "已受理"
    assert got[1]["body"]["unit_code"] == "U-1" and got[1]["body"]["status_name"] == "已派单"
    assert got[3]["body"]["reply"] == "已清理占道摊点"
    assert (got[4]["body"]["satisfaction"], got[4]["body"]["resolved"]) == ("satisfied", True)
    assert [m["event"] for m in got] == [
        "ticket.received",
        "ticket.dispatched",
        "ticket.signed",
        "ticket.replied",
        "ticket.closed",
    ]
    assert [str(e.id) for e in envs] == [m["body"]["event_id"] for m in got]
    pushes = rig.pushes(order.ticket_id)
    assert [(p["state"], p["attempts"]) for p in pushes] == [("acked", 1)] * N


def test_failures_are_retried_until_acknowledged_and_later_statuses_wait(rig: Rig) -> None:
    """503, a 200 without the ack body and a timeout: the first status is retried; the rest wait behind it."""
    rig.fault(kind="server_error", count=2)
    rig.fault(kind="nack", count=1)
    rig.fault(kind="stall", count=1, delay_s=1.5)  # past the 1 s client timeout, nothing recorded
    order = Order()
    rig.publish(*order.lifecycle())
    rig.wait("every push after retries", lambda: len(rig.received(order.external_id)) >= N)
    time.sleep(0.5)
    _assert_in_order_once(rig, order, STATUSES)
    pushes = rig.pushes(order.ticket_id)
    assert pushes[0]["attempts"] == 5 and all(p["state"] == "acked" for p in pushes)
    assert [p["attempts"] for p in pushes[1:]] == [1] * (N - 1)  # never tried before the head was acknowledged
    assert rig.stats()["out_of_order"] == 0
    metrics = httpx.get(rig.notify.url + "/metrics").text
    assert 'notify_syncback_failures_total{code="http.503",integration="hotline-hz"} 2.0' in metrics
    assert 'notify_syncback_failures_total{code="nack.5000",integration="hotline-hz"} 1.0' in metrics
    assert 'notify_syncback_failures_total{code="timeout",integration="hotline-hz"} 1.0' in metrics
    assert "notify_syncback_lag_seconds_count" in metrics


def test_a_down_platform_blocks_neither_other_orders_nor_sms_and_loses_nothing(rig: Rig) -> None:
    dead = f"http://127.0.0.1:{stackmod.free_port()}/callback"  # nothing listens there
    rig.endpoint("hotline-down", dead)
    stuck, fine = Order("hotline-down"), Order()
    unit = f"U-{uuid.uuid4().hex[:8]}"
    phone = f"139{int(time.time() * 1000) % 10**8:08d}"
    httpx.put(
        f"{rig.notify.url}/v1/tenants/{TENANT}/recipients/unit/{unit}", json={"name": unit, "phone": phone}
    ).raise_for_status()
    now = datetime.now(UTC)
    sms = SlaClockStartedV1(
        ticket_id=fine.ticket_id,
        ticket_no=fine.ticket_no,
        unit_code=unit,
        policy_key="standard-5wd",
        started_at=now,
        warn_at=now + timedelta(days=3),
        due_at=now + timedelta(days=5),
        time_limit="5 working days",
    )
    sid = str(fine.ticket_id)
    rig.publish(
        *stuck.lifecycle(),
        *fine.lifecycle(),
        Envelope(source="escalation", tenant=TENANT, subject=sid, correlation_id=sid, data=sms),
    )
    rig.wait("the healthy platform's order", lambda: len(rig.received(fine.external_id)) >= N)
    _assert_in_order_once(rig, fine, STATUSES)

    def sms_sent() -> bool:
        msgs = httpx.get(f"{rig.aliyun.url}/_fake/messages").json()
        return any(fine.ticket_no in m["params"].values() for m in msgs)

    rig.wait("the SMS", sms_sent)
    rig.wait("retries against the dead platform", lambda: rig.pushes(stuck.ticket_id)[0]["attempts"] >= 3)
    pushes = rig.pushes(stuck.ticket_id)
    assert pushes[0]["last_code"] == "connect_error"
    assert [p["attempts"] for p in pushes[1:]] == [0] * (N - 1) and all(p["state"] == "pending" for p in pushes)
    # The platform comes back (here: at a new address): everything is delivered, in order.
    rig.endpoint("hotline-down", rig.platform.url + "/callback")
    rig.wait("the recovered platform's order", lambda: len(rig.received(stuck.external_id)) >= N)
    _assert_in_order_once(rig, stuck, STATUSES)


def test_sigkill_mid_push_delivers_everything_once_after_restart(rig: Rig) -> None:
    """notify dies while the platform holds a push it already recorded; the retry after restart is deduped."""
    rig.fault(kind="delay", count=1, delay_s=30)
    order = Order()
    envs = order.lifecycle()
    rig.publish(envs[0])
    rig.wait("the first push reaching the platform", lambda: len(rig.received(order.external_id)) == 1)
    duplicates_before = rig.stats()["duplicates"]
    assert rig.notify.kill(signal.SIGKILL) == -signal.SIGKILL
    httpx.delete(rig.platform.url + "/_fake/faults").raise_for_status()
    rig.publish(*envs[1:])  # queued by the restarted process, behind the unacknowledged head
    rig.notify.start()
    rig.notify.wait_ready("/readyz")
    rig.wait("all after restart", lambda: len(rig.received(order.external_id)) >= N, timeout=60)
    time.sleep(1.0)
    _assert_in_order_once(rig, order, STATUSES)
    assert rig.stats()["duplicates"] == duplicates_before + 1  # the head was resent with the same key
    assert rig.pushes(order.ticket_id)[0]["attempts"] == 2
    assert SECRET not in rig.notify.log.read_text(errors="replace")
