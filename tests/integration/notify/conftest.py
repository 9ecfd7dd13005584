"""notify as a real process on real Kafka and PostgreSQL, with both fake SMS providers as processes.

Isolation from the rest of the session (the e2e tier runs its own notify on the same broker and
server): a database of its own, private topics and its own consumer group, all chosen here.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gridline_contracts.envelope import Envelope
from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import ReporterRef, TicketReceivedV1
from gridline_pii import Keyring

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))

import stack as stackmod  # noqa: E402

TENANT = "330106"
TENCENT_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
TENCENT_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
RECEIPT_TOKEN = "it-receipts"


@dataclass
class Proc:
    name: str
    port: int
    cmd: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child's for its whole life
        self.popen = subprocess.Popen(
            self.cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{stackmod.tail(self.log)}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready:\n{stackmod.tail(self.log)}")
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.popen is not None
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
        return self.popen.wait(timeout=60)


@dataclass
class NotifyRig:
    kafka: str
    topic: str
    notify: Proc
    aliyun: Proc
    tencent: Proc
    transit_key: str
    units: dict[str, str] = field(default_factory=dict)

    # -- driving -----------------------------------------------------------------------------

    def unit(self, phone: str, tenant: str = TENANT) -> str:
        """Register a handling unit whose liaison has this phone; returns its code."""
        code = f"U-{uuid.uuid4().hex[:8]}"
        r = httpx.put(
            f"{self.notify.url}/v1/tenants/{tenant}/recipients/unit/{code}", json={"name": code, "phone": phone}
        )
        r.raise_for_status()
        return code

    def received(self, phone: str, tenant: str, channel: str = "hotline", priority: str = "normal") -> Envelope[Any]:
        """A citizen's report with a reachable reporter (phone sealed with the transit key, as intake does)."""
        now = datetime.now(UTC)
        tid = uuid.uuid4()
        token = Keyring.from_spec(self.transit_key).seal(phone, "reporter-contact")
        data = TicketReceivedV1(
            ticket_id=tid,
            ticket_no=f"{tenant}-IT-{tid.hex[:10]}",
            channel=channel,  # type: ignore[arg-type]
            category_code="200102",
            priority=priority,  # type: ignore[arg-type]
            description="测试",
            reported_at=now,
            received_at=now,
            reporter=ReporterRef(contact_token=token, masked_phone=phone[:3] + "****" + phone[-4:]),
        )
        return Envelope(source="intake", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)

    def clock_started(self, unit_code: str, tenant: str = TENANT) -> Envelope[Any]:
        now = datetime.now(UTC)
        tid = uuid.uuid4()
        data = SlaClockStartedV1(
            ticket_id=tid,
            ticket_no=f"{tenant}-IT-{tid.hex[:10]}",
            unit_code=unit_code,
            policy_key="standard-5wd",
            started_at=now,
            warn_at=now + timedelta(days=3),
            due_at=now + timedelta(days=5),
            time_limit="5 working days",
        )
        return Envelope(source="escalation", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)

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

    def fault(self, fake: Proc, **fault: Any) -> None:
        httpx.post(f"{fake.url}/_fake/faults", json=fault).raise_for_status()

    def sent(self, fake: Proc, order: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = httpx.get(f"{fake.url}/_fake/messages").json()
        return [
            m for m in messages if order in (m["params"].values() if isinstance(m["params"], dict) else m["params"])
        ]

    def notifications(self, ticket_id: str, tenant: str = TENANT) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.notify.url}/v1/tenants/{tenant}/tickets/{ticket_id}/notifications", timeout=5)
        r.raise_for_status()
        out: list[dict[str, Any]] = r.json()
        return out

    def attempts(self, notification_id: str, tenant: str = TENANT) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.notify.url}/v1/tenants/{tenant}/notifications/{notification_id}/attempts", timeout=5)
        r.raise_for_status()
        out: list[dict[str, Any]] = r.json()
        return out

    def settled(self, ticket_id: str, timeout: float = 30, tenant: str = TENANT) -> dict[str, Any]:
        """Wait for the ticket's one notification to reach a final status."""
        return self.wait_note(ticket_id, lambda n: n["status"] in ("sent", "failed"), timeout, tenant)

    def wait_note(
        self, ticket_id: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 30, tenant: str = TENANT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = self.notifications(ticket_id, tenant)
            except httpx.HTTPError:
                last = []
            if len(last) == 1 and ok(last[0]):
                return last[0]
            time.sleep(0.2)
        raise AssertionError(f"not settled in {timeout}s: {last}\n{stackmod.tail(self.notify.log)}")


async def _prepare(kafka: str, admin_url: str, db: str, topic: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def rig(stack: Any) -> Iterator[NotifyRig]:
    run = uuid.uuid4().hex[:8]
    db = f"notify_it_{run}"
    topic = f"it-notify-{run}.sla.v1"
    asyncio.run(_prepare(stack.kafka, stack.database_url, db, topic))
    db_url = stack.database_url.rsplit("/", 1)[0] + "/" + db
    log_dir = Path(tempfile.mkdtemp(prefix="gridline-notify-it-"))
    py = sys.executable
    ports = {n: stackmod.free_port() for n in ("notify", "aliyun", "tencent")}
    aliyun = Proc(
        "aliyun",
        ports["aliyun"],
        [
            *(py, "-m", "gridline_fakes", "aliyun-sms", "--port", str(ports["aliyun"])),
            *("--template", "SMS_900000001:order", "--template", "SMS_900000002:order,due"),
            *("--template", "SMS_900000006:order"),
            *("--per-minute", "1", "--per-hour", "1000", "--per-day", "1000", "--log-level", "warning"),
            *("--report-url", f"http://127.0.0.1:{ports['notify']}/v1/receipts/aliyun?token={RECEIPT_TOKEN}"),
        ],
        dict(os.environ),
        log_dir / "aliyun.log",
    )
    tencent = Proc(
        "tencent",
        ports["tencent"],
        [
            *(py, "-m", "gridline_fakes", "tencent-sms", "--port", str(ports["tencent"])),
            *("--template", "1110:2", "--template", "1111:1", "--per-day", "1000", "--log-level", "warning"),
            *("--report-url", f"http://127.0.0.1:{ports['notify']}/v1/receipts/tencent?token={RECEIPT_TOKEN}"),
        ],
        dict(os.environ),
        log_dir / "tencent.log",
    )
    transit = stackmod.new_key("t1")
    failover = {
        "kind": "tencent",
        "base_url": tencent.url,
        "access_key_id": TENCENT_ID,
        "access_key_secret": TENCENT_KEY,
        "sign_name": "某市12345",
        "templates": {
            "ticket_assigned": {"code": "1110", "params": ["order", "due"]},
            "ticket_received": {"code": "1111", "params": ["order"]},
        },
    }
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "DATABASE_URL": db_url,
        "HTTP_PORT": str(ports["notify"]),
        "PII_KEY": stackmod.new_key("n1"),
        "PII_TRANSIT_KEY": transit,
        "CONSUMER_GROUP": f"notify-it-{run}",
        "CONSUME_TOPICS": json.dumps([topic]),
        "SMS_PROVIDER_BASE_URL": aliyun.url,
        "SMS_TEMPLATES": json.dumps(
            {"ticket_received": "SMS_900000001", "ticket_assigned": "SMS_900000002", "ticket_result": "SMS_900000006"}
        ),
        "SMS_FAILOVER": json.dumps(failover),
        "RECEIPT_TOKEN": RECEIPT_TOKEN,
        "SMS_TIMEOUT_S": "1.0",
        "SENDER_PER_PROVIDER_ATTEMPTS": "2",
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
    notify = Proc("notify", ports["notify"], [py, "-m", "notify", "run"], env, log_dir / "notify.log")
    migrated = subprocess.run(
        [py, "-m", "notify", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    for p in (aliyun, tencent):
        p.start()
    notify.start()
    try:
        aliyun.wait_ready("/_fake/messages")
        tencent.wait_ready("/_fake/messages")
        notify.wait_ready("/readyz")
        yield NotifyRig(stack.kafka, topic, notify, aliyun, tencent, transit)
    finally:
        codes = {p.name: p.kill(signal.SIGTERM) for p in (notify, aliyun, tencent) if p.popen is not None}
        assert codes["notify"] in (0, -15), f"unclean notify shutdown; logs in {log_dir}"
