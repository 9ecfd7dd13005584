"""The durable SLA timer under load: escalation's set-based Timer beside procrastinate, in one run.

What is measured (each figure with its baseline from the same run, ratios reported):

- ``burst``: ``--armed`` clocks in PostgreSQL (default 1,000,000), of which ``--due`` (default
  100,000) become due at the same instant (one COPY commit: the start of a working day). The real
  service (``python -m escalation run`` with only the ``worker`` role, ``--instances`` processes)
  fires them all: each clock's state change (黄牌 + the E1 催办 rung) and its outbox events, in
  the same transaction. Time from the commit to the last due clock fired.
- ``steady``: ``--rate`` clocks/s (default 100) falling due for ``--steady-s`` seconds; the lag
  from due time to the commit that fired it, from the service's own
  ``escalation_timer_lag_seconds`` histogram (p99 is the upper bound of its bucket).
- ``memory``: the service processes' RSS with nothing armed, with ``--armed`` armed, and after the
  burst (the timer holds one batch, never the armed set).
- ``procrastinate`` (the baseline): the same job for ``--baseline-due`` clocks (default 5,000) as
  one procrastinate job each (``schedule_at`` = due time, beside ``--baseline-future`` future
  jobs); each job loads its clock, ticks it with the same domain code, saves it and adds the same
  outbox events in one transaction. Worker with ``--instances`` × 8 concurrency, stopping when
  the queue is empty. Throughput compared in clocks/s.

PostgreSQL and Kafka come from ``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` (``tools/devstack.py
up``); the run creates and drops a database of its own.

    .venv/bin/python bench/escalation/bench_timer.py --out bench/escalation/results/timer.json
    .venv/bin/python bench/escalation/bench_timer.py --armed 20000 --due 2000 --baseline-due 300 \\
        --baseline-future 1000 --steady-s 5 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from escalation import domain, store
from escalation.calendar import WorkCalendar
from escalation.domain import Clock
from escalation.handlers import plan_of
from escalation.policy import DEFAULT_POLICIES
from gridline_boot.db import create_engine, session_factory
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1
from gridline_messaging import outbox

ROOT = Path(__file__).resolve().parents[2]
SH = "Asia/Shanghai"
CAL = WorkCalendar(SH)
STANDARD = DEFAULT_POLICIES["standard-5wd"]
CRITICAL = DEFAULT_POLICIES["critical-2h"]
TENANT = "330106"
COLUMNS = [*store.CLOCK_FIELDS, "colour", "plan", "plan_len", "plan_pos"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Template = tuple[Clock, str, int]  # a clock, its encoded plan (JSON text) and the plan's length


def template(policy_key: str, dispatched_at: datetime) -> Template:
    e = TicketDispatchedV1(
        ticket_id=uuid.uuid4(),
        ticket_no="GL-BENCH",
        category_code="0102",
        unit_code="330106005",
        grid_code="330106001001",
        sla_policy_key=policy_key,
        dispatched_at=dispatched_at,
        reporter=ReporterRef(),
    )
    policy = DEFAULT_POLICIES[policy_key]
    clock, _ = domain.arm_clock(e, TENANT, policy, CAL)
    # Exactly what the service saves when it arms a clock (a plan does not depend on the ticket).
    plan = plan_of(clock, policy, CAL)
    return clock, json.dumps(plan), len(plan)


def record(t: Template, n: int) -> tuple[Any, ...]:
    c = replace(t[0], ticket_id=uuid.uuid4(), ticket_no=f"GL-BENCH-{n:08d}")
    return (*(getattr(c, f) for f in store.CLOCK_FIELDS), c.colour, t[1], t[2], 0)


async def copy_clocks(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table("clock", schema_name=store.SCHEMA, columns=COLUMNS, records=rows)


class Service:
    """One escalation process with only the timer (``worker``) role."""

    def __init__(self, name: str, db: str, kafka: str, log_dir: Path, batch: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "ROLES": '["worker","api"]',
            "HTTP_PORT": str(self.port),
            "TIMER_BATCH_MAX": str(batch),
            "TIMER_INTERVAL_S": "0.2",
            "LOG_LEVEL": "WARNING",
        }
        self.log = log_dir / f"{name}.log"
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "escalation", "run"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"escalation exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"escalation not ready; see {self.log}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def lag_buckets(self) -> dict[float, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[float, float] = {}
        for line in text.splitlines():
            if line.startswith("escalation_timer_lag_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


async def due_count(conn: asyncpg.Connection) -> int:
    # Written so each half matches one of the timer's partial indexes: a plain "next_due_at <=
    # now()" has no index since plans, and scanning a million clocks every 50 ms loaded the very
    # database being measured (the first million-clock runs' steady lag).
    n: int = await conn.fetchval(
        f"SELECT (SELECT count(*) FROM {store.SCHEMA}.clock WHERE next_due_at <= now() AND plan_pos < plan_len)"
        f" + (SELECT count(*) FROM {store.SCHEMA}.clock WHERE next_due_at <= now() AND next_due_at IS NOT NULL"
        " AND plan_pos >= plan_len)"
    )
    return n


async def outbox_count(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.outbox")
    return n


async def wait_drained(conn: asyncpg.Connection, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while await due_count(conn):
        if time.monotonic() > deadline:
            raise RuntimeError("timer did not drain in time")
        await asyncio.sleep(0.05)
    return time.monotonic()


def percentile_bound(buckets: dict[float, float], q: float) -> float:
    total = buckets.get(float("inf"), 0.0)
    if total == 0:
        return float("nan")
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return float("inf")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    name = f"bench_esc_{uuid.uuid4().hex[:8]}"
    db = base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    log_dir = Path(args.log_dir)
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    services: list[Service] = []
    try:
        env = {**os.environ, "DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": kafka}
        cmd = [sys.executable, "-m", "escalation", "migrate"]
        await asyncio.to_thread(subprocess.run, cmd, env=env, cwd=ROOT, check=True)
        conn = await asyncpg.connect(db)
        services = [Service(f"esc{i}", db, kafka, log_dir, args.batch) for i in range(args.instances)]
        for s in services:
            s.wait_ready()
        rss_empty = [s.rss_mb() for s in services]

        # -- arm: the not-yet-due clocks, dispatched over the coming weeks --------------------------
        t = time.monotonic()
        future = [
            template("standard-5wd", datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(hours=7 * k)) for k in range(64)
        ]
        armed = args.armed - args.due
        chunk = 50_000
        for start in range(0, armed, chunk):
            rows = [record(future[n % len(future)], n) for n in range(start, min(start + chunk, armed))]
            await copy_clocks(conn, rows)
        await conn.execute(f"ANALYZE {store.SCHEMA}.clock")
        arm_s = time.monotonic() - t
        await asyncio.sleep(2)
        rss_armed = [s.rss_mb() for s in services]

        # -- burst: --due clocks become due at one instant (their 黄牌 is past) --------------------
        burst = template("standard-5wd", datetime(2026, 11, 16, 10, tzinfo=UTC))  # warns Fri 20 Nov 17:30
        rows = [record(burst, armed + n) for n in range(args.due)]
        before_outbox = await outbox_count(conn)
        async with conn.transaction():
            await copy_clocks(conn, rows)
        t0 = time.monotonic()
        t1 = await wait_drained(conn, timeout=600)
        burst_s = t1 - t0
        burst_events = await outbox_count(conn) - before_outbox
        rss_after = [s.rss_mb() for s in services]

        # -- steady: --rate clocks/s fall due; lag from the service's histogram ------------------
        before = [s.lag_buckets() for s in services]
        steady_n = int(args.rate * args.steady_s)
        t_start = datetime.now(UTC) + timedelta(seconds=2)
        # 特急 clocks warn at 96 min: started 96 min before their due instant.
        warn_after = timedelta(minutes=96)
        steady_rows = []
        for n in range(steady_n):
            due = t_start + timedelta(seconds=n / args.rate)
            steady_rows.append(record(template("critical-2h", due - warn_after), 10**8 + n))
        await copy_clocks(conn, steady_rows)  # armed ahead; they fall due over --steady-s seconds
        await asyncio.sleep(args.steady_s + 3)
        await wait_drained(conn, timeout=60)
        after = [s.lag_buckets() for s in services]
        lag: dict[float, float] = {}
        for b, a in zip(before, after, strict=True):
            for le, v in a.items():
                lag[le] = lag.get(le, 0.0) + v - b.get(le, 0.0)
        for s in services:
            s.stop()
        services = []

        # -- baseline: procrastinate, one job per due clock --------------------------------------
        baseline = await run_procrastinate(db, conn, args, armed)
        await conn.close()
    finally:
        for s in services:
            s.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    ours = args.due / burst_s
    return {
        "benchmark": "escalation durable timer",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "params": vars(args),
        "arm": {"clocks": args.armed, "seconds": round(arm_s, 2)},
        "burst": {
            "armed": args.armed,
            "due_at_once": args.due,
            "seconds": round(burst_s, 3),
            "clocks_per_s": round(ours, 1),
            "events_written": burst_events,
            "target_seconds": 10,
            "met": burst_s <= 10,
        },
        "steady": {
            "rate_per_s": args.rate,
            "seconds": args.steady_s,
            "fired": lag.get(float("inf"), 0.0),
            "lag_p50_le_s": percentile_bound(lag, 0.50),
            "lag_p99_le_s": percentile_bound(lag, 0.99),
            "lag_max_le_s": percentile_bound(lag, 1.0),
            "target_p99_s": 1.0,
            "met": percentile_bound(lag, 0.99) <= 1.0,
        },
        "memory_rss_mb": {
            "nothing_armed": rss_empty,
            "armed": rss_armed,
            "after_burst": rss_after,
            "growth_with_armed_mb": [round(a - e, 1) for a, e in zip(rss_armed, rss_empty, strict=True)],
        },
        "baseline_procrastinate": baseline,
        "ratio_throughput_vs_procrastinate": round(ours / baseline["clocks_per_s"], 2),
        "target_ratio": 3.0,
    }


async def run_procrastinate(db: str, conn: asyncpg.Connection, args: argparse.Namespace, offset: int) -> dict[str, Any]:
    """The same job with procrastinate: one job per due clock, executing the same domain code."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=db))
    engine = create_engine(db.replace("postgresql://", "postgresql+asyncpg://", 1), schema=store.SCHEMA)
    sessions = session_factory(engine)
    policies = {(p.key, p.version): p for p in DEFAULT_POLICIES.values()}

    @app.task(name="fire_clock", queue="sla")
    async def fire_clock(ticket_id: str) -> None:
        async with sessions() as s, s.begin():
            for c in await store.ticket_clocks(s, uuid.UUID(ticket_id), lock=True):
                now = datetime.now(UTC)
                new, events = domain.tick(c, now, policies[(c.policy_key, c.policy_version)], CAL)
                await store.save_clock(s, new, [])  # procrastinate's job drives it; no plan needed
                await outbox.add(
                    s,
                    store.outbox,
                    [
                        Envelope(
                            source="escalation", tenant=c.tenant, subject=ticket_id, correlation_id=ticket_id, data=e
                        )
                        for e in events
                    ],
                )

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        # The future jobs it must skip over, like our armed-but-not-due clocks.
        later = datetime.now(UTC) + timedelta(days=30)
        for start in range(0, args.baseline_future, 5000):
            n = min(5000, args.baseline_future - start)
            future_jobs: list[dict[str, Any]] = [{"ticket_id": str(uuid.uuid4())} for _ in range(n)]
            await fire_clock.configure(schedule_at=later).batch_defer_async(*future_jobs)
        # The due clocks (same template as the burst), their due time already past.
        burst = template("standard-5wd", datetime(2026, 11, 16, 10, tzinfo=UTC))
        rows = [record(burst, 2 * 10**8 + n) for n in range(args.baseline_due)]
        # Not in the timer's index: only procrastinate's jobs drive them.
        nd = COLUMNS.index("next_due_at")
        rows = [(*r[:nd], None, *r[nd + 1 : -3], "[]", 0, 0) for r in rows]
        await copy_clocks(conn, rows)
        before = await outbox_count(conn)
        due_at = datetime.now(UTC) - timedelta(seconds=1)
        due_jobs: list[dict[str, Any]] = [{"ticket_id": str(r[0])} for r in rows]
        await fire_clock.configure(schedule_at=due_at).batch_defer_async(*due_jobs)
        t0 = time.monotonic()
        await app.run_worker_async(
            queues=["sla"], concurrency=8 * args.instances, wait=False, install_signal_handlers=False
        )
        seconds = time.monotonic() - t0
        events = await outbox_count(conn) - before
    await engine.dispose()
    return {
        "library": f"procrastinate {procrastinate.__version__}",
        "due_jobs": args.baseline_due,
        "future_jobs": args.baseline_future,
        "concurrency": 8 * args.instances,
        "seconds": round(seconds, 3),
        "clocks_per_s": round(args.baseline_due / seconds, 1),
        "events_written": events,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--armed", type=int, default=1_000_000)
    p.add_argument("--due", type=int, default=100_000)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--steady-s", type=float, default=30)
    p.add_argument("--baseline-due", type=int, default=5000)
    p.add_argument("--baseline-future", type=int, default=100_000)
    p.add_argument("--log-dir", default="/tmp/bench-escalation-logs")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
