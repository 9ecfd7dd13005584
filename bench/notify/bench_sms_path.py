"""Event → SMS at the fake provider through notify's whole path, beside a bare httpx POST loop.

    eval "$(python3 tools/devstack.py --workdir /tmp/x up)"; export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
    .venv/bin/python bench/notify/bench_sms_path.py [--messages 5000] [--out bench/notify/results/sms_path.json]

Both measurements hit the same fake Aliyun server process (signature verification included), one
after the other in the same run:

* ``bare_post``: the baseline — an asyncio loop of signed ``SendSms`` POSTs with httpx, no
  database, no Kafka, with the same number of requests in flight as notify's sender uses.
* ``full_path``: ``SlaClockStarted`` events are produced to Kafka; notify runs as its own process
  (consumer → inbox + notification rows → claim + attempt rows → open the sealed number, sign,
  send → record outcome + ``notification.sent`` in the outbox → relay to Kafka). Timed from the
  first event produced to the last notification recorded ``sent`` in PostgreSQL.

The JSON has both rates and their ratio. Runs on whatever the machine has; the figures say nothing
about another machine.

``--pipelines N`` sets notify's ``SENDER_PIPELINES`` (batches in flight; the keep-alive pool is sized
``concurrency × N``); ``--fake-workers N`` runs the fake as N uvicorn processes (both measurements
hit the same ones); ``--profile FILE`` runs notify under cProfile (read with ``pstats``: sort by
``tottime`` — cumulative times of coroutines include their waits).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gridline_contracts.envelope import Envelope
from gridline_contracts.escalation import SlaClockStartedV1
from notify.providers.aliyun_sms import AliyunSmsClient
from notify.providers.base import SmsMessage
from notify.transport import make_client

ROOT = Path(__file__).resolve().parents[2]
TENANT = "330106"
UNITS = 200  # distinct numbers, so the fake's per-number flow control is not what is measured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn workers)."""
    total = 0.0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far: everyone's work, not only ours."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuMeter:
    """CPU used per message by notify, the fake and the whole machine during one measurement."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        self.machine = machine_cpu_s()

    def per_message_ms(self, n: int) -> dict[str, float]:
        out = {
            f"{name}_cpu_ms": round((proc_cpu_s(pid) - self.start[name]) * 1000 / n, 3)
            for name, pid in self.pids.items()
        }
        busy, total = machine_cpu_s()
        out["machine_busy_cpu_ms"] = round((busy - self.machine[0]) * 1000 / n, 3)
        out["machine_busy_fraction"] = round((busy - self.machine[0]) / max(total - self.machine[1], 1e-9), 3)
        return out


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


async def bare_post(base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    """The baseline: signed SendSms POSTs in a loop, `concurrency` in flight, nothing else."""
    # notify's own client (sharded pool, see notify.transport), sized for the same requests in flight.
    async with make_client(concurrency, 30) as http:
        client = AliyunSmsClient(http, access_key_id="testId", access_key_secret="testSecret", base_url=base_url)
        queue = iter(range(n))
        outcomes: dict[str, int] = {}

        async def worker() -> None:
            for i in queue:
                msg = SmsMessage(
                    phone=f"137{i % UNITS:08d}",
                    sign_name="某市12345",
                    template_code="SMS_900000002",
                    template_params={"order": f"B-{i}", "due": "11月30日17:30"},
                    out_id=str(uuid.uuid4()),
                )
                r = await client.send(msg)
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1), "outcomes": outcomes}


async def full_path(kafka: str, topic: str, db_url: str, notify_url: str, n: int, run: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=notify_url, timeout=10) as c:
        for u in range(UNITS):
            r = await c.put(
                f"/v1/tenants/{TENANT}/recipients/unit/B{u:04d}", json={"name": f"B{u}", "phone": f"136{u:08d}"}
            )
            r.raise_for_status()
    now = datetime.now(UTC)
    envs = []
    for i in range(n):
        tid = uuid.uuid4()
        data = SlaClockStartedV1(
            ticket_id=tid,
            ticket_no=f"{TENANT}-B{run}-{i:06d}",
            unit_code=f"B{i % UNITS:04d}",
            policy_key="standard-5wd",
            started_at=now,
            warn_at=now + timedelta(days=3),
            due_at=now + timedelta(days=5),
            time_limit="5 working days",
        )
        envs.append(Envelope(source="bench", tenant=TENANT, subject=str(tid), correlation_id=str(tid), data=data))
    records = [(e.body(), e.subject.encode(), e.headers()) for e in envs]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True, linger_ms=5)
    await producer.start()
    conn = await asyncpg.connect(db_url)
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k, headers=h) for v, k, h in records]
        await asyncio.gather(*futures)
        produced = time.perf_counter() - started
        first_sent = None
        while True:
            done = await conn.fetchval("SELECT count(*) FROM notify.notification WHERE status IN ('sent', 'failed')")
            if done and first_sent is None:
                first_sent = time.perf_counter() - started
            if done >= n:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        statuses = dict(await conn.fetch("SELECT status, count(*) FROM notify.notification GROUP BY status"))
        attempts = await conn.fetchval("SELECT count(*) FROM notify.attempt")
    finally:
        await conn.close()
        await producer.stop()
    return {
        "messages": n,
        "seconds": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
        "produce_seconds": round(produced, 3),
        "first_sent_after_s": round(first_sent or 0, 3),
        "statuses": {k: int(v) for k, v in statuses.items()},
        "attempt_rows": int(attempts),
    }


async def prepare(kafka: str, admin_url: str, db: str, topic: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()


async def drop(admin_url: str, db: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=25, help="notify's SENDER_BATCH_MAX")
    ap.add_argument("--fake-workers", type=int, default=1, help="uvicorn worker processes for the fake")
    ap.add_argument("--pipelines", type=int, default=2, help="notify's SENDER_PIPELINES (batches in flight)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/notify/results/sms_path.json")
    ap.add_argument("--profile", type=Path, help="run notify under cProfile, stats to this file")
    args = ap.parse_args()
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    admin_url = os.environ["DATABASE_URL"]
    run = uuid.uuid4().hex[:8]
    db, topic = f"bench_notify_{run}", f"bench-notify-{run}.sla.v1"
    db_url = admin_url.rsplit("/", 1)[0] + "/" + db
    load_before = os.getloadavg()
    asyncio.run(prepare(kafka, admin_url, db, topic))
    logs = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    fake_port, notify_port = free_port(), free_port()
    fake_env = {
        **os.environ,
        "GRIDLINE_FAKE_ALIYUN_SMS_TEMPLATES": "SMS_900000001:order;SMS_900000002:order,due",
    }
    fake_cmd = [sys.executable, "-m", "gridline_fakes", "aliyun-sms", "--port", str(fake_port)]
    fake_cmd += ["--per-minute", "1000000", "--per-hour", "1000000", "--per-day", "1000000", "--log-level", "warning"]
    fake_cmd += ["--workers", str(args.fake_workers)]
    fake = subprocess.Popen(
        fake_cmd,
        env=fake_env,
        cwd=ROOT,
        stdout=open(logs / "fake.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    notify_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "HTTP_PORT": str(notify_port),
        "PII_KEY": new_key("n1"),
        "PII_TRANSIT_KEY": new_key("t1"),
        "CONSUMER_GROUP": f"bench-notify-{run}",
        "CONSUME_TOPICS": json.dumps([topic]),
        "SMS_PROVIDER_BASE_URL": f"http://127.0.0.1:{fake_port}",
        "SMS_TIMEOUT_S": "10",
        "SENDER_BATCH_MAX": str(args.concurrency),
        "SENDER_PIPELINES": str(args.pipelines),
        "HTTP_MAX_CONNECTIONS": str(args.concurrency * args.pipelines),
        "SENDER_POLL_INTERVAL_S": "0.02",
        "CONSUMER_BATCH_MAX": "500",
        "DB_POOL_SIZE": "20",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    notify: subprocess.Popen[bytes] | None = None
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "notify", "migrate"], env=notify_env, cwd=ROOT, capture_output=True, check=False
        )
        if migrated.returncode:
            raise RuntimeError(migrated.stderr.decode()[-2000:])
        wait_http(f"http://127.0.0.1:{fake_port}/_fake/faults", fake)
        # As many requests in flight as notify can have (batch × pipelines), on the same fake.
        in_flight = args.concurrency * args.pipelines
        meter = CpuMeter({"fake": fake.pid, "bench_client": os.getpid()})
        baseline = uvloop.run(bare_post(f"http://127.0.0.1:{fake_port}", args.messages, in_flight))
        baseline["cpu_per_message"] = meter.per_message_ms(args.messages)
        print("bare_post", baseline, flush=True)
        notify_cmd = [sys.executable, "-m", "notify", "run"]
        if args.profile:
            notify_cmd[1:1] = ["-m", "cProfile", "-o", str(args.profile)]
        notify = subprocess.Popen(
            notify_cmd,
            env=notify_env,
            cwd=ROOT,
            stdout=open(logs / "notify.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"http://127.0.0.1:{notify_port}/readyz", notify)
        meter = CpuMeter({"fake": fake.pid, "notify": notify.pid})
        full = asyncio.run(full_path(kafka, topic, db_url, f"http://127.0.0.1:{notify_port}", args.messages, run))
        full["cpu_per_message"] = meter.per_message_ms(args.messages)
        print("full_path", full, flush=True)
    finally:
        if notify is not None and notify.poll() is None:
            # cProfile writes its stats after a clean exit: SIGINT to the process only, more time.
            if args.profile:
                notify.send_signal(signal.SIGINT)
            else:
                os.killpg(notify.pid, signal.SIGTERM)
            notify.wait(timeout=180 if args.profile else 60)
        fake.terminate()
        fake.wait(timeout=30)
        asyncio.run(drop(admin_url, db))
    result = {
        "benchmark": "notify event → fake Aliyun SendSms, whole path vs bare httpx POST loop",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine competes for the same cores: read the rates against this.
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "params": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "pipelines": args.pipelines,
            "in_flight_both": args.concurrency * args.pipelines,
            "fake_workers": args.fake_workers,
        },
        "bare_post": baseline,
        "full_path": full,
        "ratio_full_to_bare": round(full["per_s"] / baseline["per_s"], 3),
        "target_per_s": 1000,
        "meets_target": full["per_s"] >= 1000,
        "logs": str(logs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
