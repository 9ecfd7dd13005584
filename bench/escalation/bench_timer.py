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

- ``floor``: PostgreSQL alone, no timer: the burst's row writes as plain SQL in one transaction on
  one connection (``--due`` clock updates of the same columns, and as many outbox rows of the same
  size as the burst wrote), so the burst can be read against what the database needs anyway.

Kafka comes from ``KAFKA_BOOTSTRAP_SERVERS`` (``tools/devstack.py up``). PostgreSQL: by default
(``--pg own``) a throwaway cluster of its own, started with ``tools/devstack.py`` and sized for a
million clocks (``PG_SETTINGS``: buffers and checkpoint spacing only; fsync, synchronous_commit and
full_page_writes stay on), so the figures do not depend on what other tests do to the shared one;
``--pg env`` uses ``DATABASE_URL``'s cluster. Either way the run creates and drops its database.
The armed clocks are written with COPY (as a city's bulk import would), then vacuumed, analysed and
checkpointed: armed over the preceding days, as at the start of a working day.

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
from escalation.domain import Clock
from escalation.handlers import plan_of
from escalation.policy import DEFAULT_POLICIES
from gridline_boot.db import create_engine, session_factory
from gridline_calendar import WorkCalendar
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1
from gridline_messaging import outbox

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import devstack  # noqa: E402  (tools/ is not a package)

SH = "Asia/Shanghai"
CAL = WorkCalendar(SH)
STANDARD = DEFAULT_POLICIES["standard-5wd"]
CRITICAL = DEFAULT_POLICIES["critical-2h"]
TENANT = "330106"
COLUMNS = [*store.CLOCK_FIELDS, "colour", "plan_len", "plan_pos"]
_ID, _NO = COLUMNS.index("ticket_id"), COLUMNS.index("ticket_no")
# The bench's own cluster: room for a million clocks in memory, and no checkpoint inside the burst
# (one right before it, see run). Durability untouched: fsync, synchronous_commit, full_page_writes on.
PG_SETTINGS = {
    "shared_buffers": "2GB",
    "wal_buffers": "64MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
}


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


Row = tuple[list[Any], str]  # a clock row (COLUMNS) and its plan (JSON text, "" for none)


def record(t: Template, n: int) -> Row:
    c = replace(t[0], ticket_id=uuid.uuid4(), ticket_no=f"GL-BENCH-{n:08d}")
    return [*(getattr(c, f) for f in store.CLOCK_FIELDS), c.colour, t[2], 0], t[1]


def records(ts: list[Template], start: int, stop: int) -> list[Row]:
    """``record`` for many clocks, the templates in turn: a template's row with a new ticket id and
    number (a dataclass copy per clock made arming a million take minutes of Python)."""
    bases = [record(t, 0) for t in ts]
    out = []
    for n in range(start, stop):
        row, plan = bases[n % len(bases)]
        row = row.copy()
        row[_ID], row[_NO] = uuid.uuid4(), f"GL-BENCH-{n:08d}"
        out.append((row, plan))
    return out


def burst_template(now: datetime) -> tuple[Template, datetime]:
    """A standard clock whose 黄牌 instant (with the E1 催办) is past and whose next is hours away:
    firing it is exactly the start-of-day job, 2 events, whatever day the bench runs."""
    for hours in range(1, 24 * 40):
        dispatched = now - timedelta(hours=hours)
        t = template("standard-5wd", dispatched)
        ats = [datetime.fromisoformat(p["at"]) for p in json.loads(t[1])]
        if len(ats) > 1 and ats[0] <= now - timedelta(minutes=1) and ats[1] > now + timedelta(hours=3):
            return t, dispatched
    raise RuntimeError("no dispatch time gives a clock due now")


def start_own_pg() -> devstack.PgHandle:
    h = devstack.start_postgres()
    admin = h.url.rsplit("/", 1)[0] + "/postgres"
    for k, v in PG_SETTINGS.items():
        devstack.pg_query(admin, f"ALTER SYSTEM SET {k} = '{v}'")
    return devstack.restart_postgres(h)


async def pg_facts(conn: asyncpg.Connection) -> dict[str, str]:
    names = [*PG_SETTINGS, "fsync", "synchronous_commit", "full_page_writes", "server_version"]
    rows = await conn.fetch("SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])", names)
    return {r["name"]: f"{r['setting']}{' × ' + r['unit'] if r['unit'] else ''}" for r in rows}


async def table_stats(conn: asyncpg.Connection) -> dict[str, Any]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row = await conn.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd, pg_current_wal_lsn() AS lsn FROM pg_stat_user_tables "
        f"WHERE schemaname = '{store.SCHEMA}' AND relname = 'clock'"
    )
    assert row is not None
    return dict(row)


async def stats_delta(conn: asyncpg.Connection, before: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(1.5)  # busy backends report their counters at most once a second
    after = await table_stats(conn)
    wal = await conn.fetchval("SELECT $1::pg_lsn - $2::pg_lsn", after["lsn"], before["lsn"])
    upd = after["n_tup_upd"] - before["n_tup_upd"]
    return {
        "clock_updates": upd,
        "clock_hot_updates": after["n_tup_hot_upd"] - before["n_tup_hot_upd"],
        "wal_mb": round(float(wal) / 1e6, 1),
    }


async def copy_clocks(conn: asyncpg.Connection, rows: list[Row]) -> None:
    """The clocks and their plans, as ``store.insert_clock`` writes them, with COPY."""
    await conn.copy_records_to_table(
        "clock", schema_name=store.SCHEMA, columns=COLUMNS, records=[tuple(r) for r, _ in rows]
    )
    plans = [(r[_ID], r[COLUMNS.index("kind")], r[COLUMNS.index("round")], p) for r, p in rows if p]
    await conn.copy_records_to_table(
        "clock_plan", schema_name=store.SCHEMA, columns=["ticket_id", "kind", "round", "plan"], records=plans
    )


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
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    own = start_own_pg() if args.pg == "own" else None
    base = own.url if own else os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    name = f"bench_esc_{uuid.uuid4().hex[:8]}"
    db = base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    log_dir = Path(args.log_dir)
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    services: list[Service] = []
    load: dict[str, float] = {"start": os.getloadavg()[0]}
    try:
        env = {**os.environ, "DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": kafka}
        cmd = [sys.executable, "-m", "escalation", "migrate"]
        await asyncio.to_thread(subprocess.run, cmd, env=env, cwd=ROOT, check=True)
        conn = await asyncpg.connect(db)
        pg = await pg_facts(conn)
        services = [Service(f"esc{i}", db, kafka, log_dir, args.batch) for i in range(args.instances)]
        for s in services:
            s.wait_ready()
        rss_empty = [s.rss_mb() for s in services]

        # -- arm: the not-yet-due clocks, dispatched over the coming two weeks ---------------------
        t = time.monotonic()
        now = datetime.now(UTC)
        future = [template("standard-5wd", now + timedelta(hours=5 * k)) for k in range(64)]
        armed = args.armed - args.due
        chunk = 50_000
        for start in range(0, armed, chunk):
            await copy_clocks(conn, records(future, start, min(start + chunk, armed)))
        arm_s = time.monotonic() - t
        t = time.monotonic()
        await conn.execute(f"VACUUM ANALYZE {store.SCHEMA}.clock, {store.SCHEMA}.clock_plan")
        await conn.execute("CHECKPOINT")
        settle_s = time.monotonic() - t
        await asyncio.sleep(2)
        rss_armed = [s.rss_mb() for s in services]

        # -- burst: --due clocks become due at one instant (their 黄牌 is past) --------------------
        burst, burst_dispatched = burst_template(datetime.now(UTC))
        rows = records([burst], armed, armed + args.due)
        before_outbox = await outbox_count(conn)
        before = await table_stats(conn)
        load["burst_start"] = os.getloadavg()[0]
        async with conn.transaction():
            await copy_clocks(conn, rows)
        t0 = time.monotonic()
        t1 = await wait_drained(conn, timeout=600)
        burst_s = t1 - t0
        load["burst_end"] = os.getloadavg()[0]
        burst_db = await stats_delta(conn, before)
        burst_events = await outbox_count(conn) - before_outbox
        rss_after = [s.rss_mb() for s in services]

        # -- steady: --rate clocks/s fall due; lag from the service's histogram ------------------
        before_lag = [s.lag_buckets() for s in services]
        steady_n = int(args.rate * args.steady_s)
        t_start = datetime.now(UTC) + timedelta(seconds=2)
        # 特急 clocks warn at 96 min: started 96 min before their due instant.
        warn_after = timedelta(minutes=96)
        steady_rows = []
        for n in range(steady_n):
            due = t_start + timedelta(seconds=n / args.rate)
            steady_rows += records([template("critical-2h", due - warn_after)], 10**8 + n, 10**8 + n + 1)
        await copy_clocks(conn, steady_rows)  # armed ahead; they fall due over --steady-s seconds
        await asyncio.sleep(args.steady_s + 3)
        await wait_drained(conn, timeout=60)
        load["steady_end"] = os.getloadavg()[0]
        after_lag = [s.lag_buckets() for s in services]
        lag: dict[float, float] = {}
        for b, a in zip(before_lag, after_lag, strict=True):
            for le, v in a.items():
                lag[le] = lag.get(le, 0.0) + v - b.get(le, 0.0)
        for s in services:
            s.stop()
        services = []

        # -- floor: the burst's row writes as plain SQL, one transaction, one connection ----------
        floor = await run_floor(conn, [r[_ID] for r, _ in rows], before_outbox, burst_events)
        load["floor_end"] = os.getloadavg()[0]

        # -- baseline: procrastinate, one job per due clock --------------------------------------
        baseline = await run_procrastinate(db, conn, args, burst)
        load["end"] = os.getloadavg()[0]
        await conn.close()
    finally:
        for s in services:
            s.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if own is not None:
            devstack.stop_postgres(own)

    ours = args.due / burst_s
    return {
        "benchmark": "escalation durable timer",
        "when": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": load,
            "note": "2 cores shared with other engineers' work; load average sampled at each stage",
        },
        "postgres": {"cluster": "own (tools/devstack.py, tuned)" if own else "DATABASE_URL", **pg},
        "params": vars(args),
        "arm": {
            "clocks": args.armed - args.due,
            "copy_seconds": round(arm_s, 2),
            "clocks_per_s": round((args.armed - args.due) / arm_s),
            "vacuum_analyze_checkpoint_seconds": round(settle_s, 2),
        },
        "burst": {
            "armed": args.armed,
            "due_at_once": args.due,
            "dispatched_at": burst_dispatched.isoformat(),
            "seconds": round(burst_s, 3),
            "clocks_per_s": round(ours, 1),
            "events_written": burst_events,
            **burst_db,
            "target_seconds": 10,
            "met": burst_s <= 10,
        },
        "floor_postgres_alone": floor,
        "burst_vs_floor": round(burst_s / floor["seconds"], 2),
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


async def run_floor(conn: asyncpg.Connection, ids: list[uuid.UUID], outbox_from: int, events: int) -> dict[str, Any]:
    """What PostgreSQL alone needs for the burst's writes on this machine: the burst clocks' rows
    updated (the columns a firing changes, so the same indexes), and copies of the burst's outbox
    rows (same sizes) inserted, in one transaction on one connection, after a checkpoint as before
    the burst."""
    await conn.execute("CHECKPOINT")
    before = await table_stats(conn)
    t = time.monotonic()
    async with conn.transaction():
        await conn.execute(
            f"UPDATE {store.SCHEMA}.clock SET next_due_at = next_due_at + interval '1 day', plan_pos = plan_pos + 1,"
            " colour = 'red', breached = true, level = 'E2', updated_at = now() WHERE ticket_id = ANY($1::uuid[])",
            ids,
        )
        await conn.execute(
            f"INSERT INTO {store.SCHEMA}.outbox (event_id, topic, key, headers, payload) "
            f"SELECT gen_random_uuid(), topic, key, headers, payload FROM {store.SCHEMA}.outbox "
            "ORDER BY id OFFSET $1 LIMIT $2",
            outbox_from,
            events,
        )
    seconds = time.monotonic() - t
    return {
        "what": f"{len(ids)} clock updates + {events} outbox inserts, one transaction, one connection",
        "seconds": round(seconds, 3),
        **await stats_delta(conn, before),
    }


async def run_procrastinate(
    db: str, conn: asyncpg.Connection, args: argparse.Namespace, burst: Template
) -> dict[str, Any]:
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
        # The due clocks (same template as the burst), their due time already past, without a plan
        # and out of the timer's indexes: only procrastinate's jobs drive them.
        rows = records([burst], 2 * 10**8, 2 * 10**8 + args.baseline_due)
        nd, pl = COLUMNS.index("next_due_at"), COLUMNS.index("plan_len")
        for r, _ in rows:
            r[nd], r[pl] = None, 0
        await copy_clocks(conn, [(r, "") for r, _ in rows])
        before = await outbox_count(conn)
        due_at = datetime.now(UTC) - timedelta(seconds=1)
        due_jobs: list[dict[str, Any]] = [{"ticket_id": str(r[_ID])} for r, _ in rows]
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
    p.add_argument("--pg", choices=["own", "env"], default="own")
    p.add_argument("--log-dir", default="/tmp/bench-escalation-logs")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
