"""`make bench`: Gridline's whole stack on this machine under open-loop load, beside two baselines
measured in the same run (a bare FastAPI endpoint and raw aiokafka produce→consume).

    .venv/bin/python bench/stack/run.py [--rates 100,300,600,1000] [--seconds 10] [--profile intake,routing]

Starts its own Kafka broker and PostgreSQL (devstack, private workdir) and the four services as
processes (tools/stack.py), exactly as the e2e tests run them. Per offered rate it measures:

* acceptance latency: POST /v1/reports round trip at the client, from when the request was due;
* report→dispatched: intake's received_at to intake recording the dispatch (intake → Kafka →
  routing → Kafka → intake), from the services' own tables;
* report→notified: received_at to the reporter's SMS accepted by the (fake) provider;
* peak RSS of every service process.

A rate is *sustained* when ≥ 95 % of the offered reports were accepted at ≥ 95 % of the offered
rate and every accepted report was dispatched within --drain seconds after the load stopped.
Progress goes to stderr; results to bench/results/stack-<UTC time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).parent))

import devstack  # noqa: E402
import kafka_baseline  # noqa: E402
import loadgen  # noqa: E402
import stack as stackmod  # noqa: E402

from gridline_geo.crs import wgs84_to_gcj02  # noqa: E402

TENANT = "330106"
LON, LAT = wgs84_to_gcj02(120.115, 30.29)  # 德加第2网格: routed automatically to 330106005
MESSAGE_BYTES = 1024  # about a ticket.received event with its CloudEvents headers


def say(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def report_body(tag: str) -> Any:
    base = 10_000_000 + (uuid.uuid4().int % 80_000_000)

    def body(i: int) -> dict[str, Any]:
        return {
            "tenant": TENANT,
            "category_code": "200102",
            "description": f"德加公寓门口垃圾堆了三天没人清理 [{tag}]",
            "location": {"lon": LON, "lat": LAT, "crs": "gcj02"},
            "phone": f"138{(base + i) % 100_000_000:08d}",
        }

    return body


class RssSampler:
    """Peak resident set size (VmRSS) of each process, sampled every 0.25 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak[name] = max(self.peak[name], int(line.split()[1]) / 1024)
                except OSError:
                    pass
            self._stop.wait(0.25)


def summarize_http(res: loadgen.Result) -> dict[str, Any]:
    return {
        "offered_per_s": res.offered,
        "sent": int(res.offered * res.seconds),
        "ok": res.ok,
        "achieved_per_s": round(res.achieved, 1),
        "statuses": res.statuses,
        "late_starts": res.late_starts,
        "latency_ms": loadgen.percentiles(res.latencies),
    }


def bare_fastapi(rates: list[float], seconds: float) -> list[dict[str, Any]]:
    port = stackmod.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "bare_app.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/reports"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, json=report_body("warmup")(0), timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        out = []
        for rate in rates:
            cpu0 = cpu_seconds(proc.pid)
            res = loadgen.run_threads(url, rate, seconds, report_body("bare"))
            row = summarize_http(res)
            row["cpu_ms_per_request"] = round(1000 * (cpu_seconds(proc.pid) - cpu0) / max(res.ok, 1), 2)
            with_rss = _rss(proc.pid)
            row["rss_mb"] = with_rss
            out.append(row)
            say(f"bare FastAPI @ {rate:g}/s: {row['achieved_per_s']}/s ok, latency {row['latency_ms']}")
        return out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def raw_kafka(bootstrap: str, rates: list[float], seconds: float) -> list[dict[str, Any]]:
    out = []
    for rate in rates:
        r = asyncio.run(kafka_baseline.run(bootstrap, rate, seconds, MESSAGE_BYTES))
        lat: list[float] = r["latencies"]  # type: ignore[assignment]
        wall: float = r["wall"]  # type: ignore[assignment]
        row = {
            "offered_per_s": rate,
            "messages": r["messages"],
            "consumed": len(lat),
            "achieved_per_s": round(len(lat) / wall, 1),
            "latency_ms": loadgen.percentiles(lat),
        }
        out.append(row)
        say(f"raw aiokafka @ {rate:g}/s: produce→consume {row['latency_ms']}")
    return out


def pipeline_latencies(db: str, tag: str) -> tuple[list[float], list[float]]:
    like = f"%[{tag}]"
    dispatched = devstack.pg_query(
        db,
        "SELECT extract(epoch FROM h.at - t.received_at) FROM intake.ticket t JOIN intake.ticket_history h "
        f"ON h.ticket_id = t.id AND h.to_status = 'dispatched' WHERE t.description LIKE '{like}'",
        timeout=60,
    )
    notified = devstack.pg_query(
        db,
        "SELECT extract(epoch FROM n.sent_at - t.received_at) FROM intake.ticket t JOIN notify.notification n "
        "ON n.ticket_id = t.id AND n.template = 'ticket_received' AND n.status = 'sent' "
        f"WHERE t.description LIKE '{like}'",
        timeout=60,
    )
    return [float(r[0] or 0) for r in dispatched], [float(r[0] or 0) for r in notified]


def drain(db: str, tag: str, accepted: int, timeout: float) -> tuple[float | None, float | None]:
    """Seconds after the load until all accepted reports were dispatched / notified (None: not within timeout)."""
    started = time.monotonic()
    t_dispatched = t_notified = None
    while time.monotonic() - started < timeout and (t_dispatched is None or t_notified is None):
        d, n = pipeline_latencies(db, tag)
        if t_dispatched is None and len(d) >= accepted:
            t_dispatched = round(time.monotonic() - started, 1)
        if t_notified is None and len(n) >= accepted:
            t_notified = round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return t_dispatched, t_notified


def start_services(kafka: str, db: str, log_dir: Path, profile: set[str], prof_dir: Path) -> stackmod.Stack:
    # Every synthetic report stands on the same spot: with 一事多报 detection on, routing would merge
    # them instead of dispatching, so it is off (its cost is measured in bench/routing).
    # Likewise notify's per-recipient daily cap and quiet hours, which would hold the unit's SMS.
    env = {"LOG_LEVEL": "WARNING", "DUPLICATES_ENABLED": "false", "PER_RECIPIENT_DAY": "1000000"}
    # The generator is one unsigned client address: intake's per-IP limit would refuse all but 60/h.
    env |= {"REPORTS_PER_IP_PER_HOUR": "1000000000"}
    env |= {"QUIET_START": "00:00", "QUIET_END": "00:00"}
    s = stackmod.Stack(kafka=kafka, database_url=db, log_dir=log_dir, extra_env=env)
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
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    s.start_fake_sms()
    for svc in stackmod.SERVICES:
        if svc in profile:
            out = prof_dir / f"{svc}.txt"
            cmd = [s.python, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(out), "-m", svc, "run"]
            s._spawn(svc, cmd, s.env(svc))
        else:
            s.start(svc)
    s.wait_ready()
    # The unit these reports are dispatched to, so its ticket_assigned SMS goes out as in production.
    httpx.put(
        f"{s.procs['notify'].url}/v1/tenants/{TENANT}/recipients/unit/330106005",
        json={"name": "德加社区", "phone": "13900000005"},
        timeout=10,
    ).raise_for_status()
    return s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="100,300,600,1000", help="offered reports/s, comma-separated")
    p.add_argument("--seconds", type=float, default=10.0, help="load duration per rate")
    p.add_argument("--drain", type=float, default=30.0, help="seconds allowed to finish after the load")
    p.add_argument("--profile", default="", help="services to run under pyinstrument, e.g. intake,routing")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    profile = {x for x in args.profile.split(",") if x}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prof_dir = args.out / f"profiles-{stamp}"
    prof_dir.mkdir()

    result: dict[str, Any] = {
        "started_at": stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "config": {"rates": rates, "seconds": args.seconds, "drain": args.drain, "message_bytes": MESSAGE_BYTES},
    }
    workdir = Path(tempfile.mkdtemp(prefix="gridline-bench-"))
    say(f"starting Kafka and PostgreSQL in {workdir}")
    kh = devstack.start_kafka(ROOT, workdir=workdir)
    ph = devstack.start_postgres(ROOT, workdir=workdir)
    s: stackmod.Stack | None = None
    try:
        say("baseline 1/2: bare FastAPI endpoint")
        result["bare_fastapi"] = bare_fastapi(rates, args.seconds)
        say("baseline 2/2: raw aiokafka produce→consume")
        result["raw_kafka"] = raw_kafka(kh.bootstrap, rates, args.seconds)

        say("starting the four services")
        s = start_services(kh.bootstrap, ph.url, workdir / "logs", profile, prof_dir)
        pids = {name: s.procs[name].popen.pid for name in stackmod.SERVICES}
        rows = []
        for rate in rates:
            tag = f"bench-{int(rate)}-{uuid.uuid4().hex[:6]}"
            say(f"stack @ {rate:g} reports/s for {args.seconds:g}s")
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            with RssSampler(pids) as rss:
                res = loadgen.run_threads(s.procs["intake"].url + "/v1/reports", rate, args.seconds, report_body(tag))
                t_disp, t_note = drain(ph.url, tag, res.ok, args.drain)
            # CPU each service spent per accepted report (load, drain and whatever else ran meanwhile).
            cpu_ms = {k: round(1000 * (cpu_seconds(p) - cpu0[k]) / max(res.ok, 1), 2) for k, p in pids.items()}
            dispatched, notified = pipeline_latencies(ph.url, tag)
            row = summarize_http(res)
            sustained = res.ok >= 0.95 * rate * args.seconds and res.achieved >= 0.95 * rate and t_disp is not None
            row |= {
                "report_to_dispatched_ms": loadgen.percentiles(dispatched),
                "report_to_notified_ms": loadgen.percentiles(notified),
                "drained_dispatched_after_s": t_disp,
                "drained_notified_after_s": t_note,
                "peak_rss_mb": {k: round(v, 1) for k, v in rss.peak.items()},
                "cpu_ms_per_report": cpu_ms,
                "load_avg_after": os.getloadavg(),
                "sustained": sustained,
            }
            rows.append(row)
            say(
                f"  accepted {res.ok} ({row['achieved_per_s']}/s) accept {row['latency_ms']}; "
                f"→dispatched {row['report_to_dispatched_ms']}; →notified {row['report_to_notified_ms']}; "
                f"drain {t_disp}s/{t_note}s; RSS {row['peak_rss_mb']}; CPU ms/report {cpu_ms}; sustained={sustained}"
            )
        result["stack"] = rows
        sustained_rates = [r["offered_per_s"] for r in rows if r["sustained"]]
        result["highest_sustained_per_s"] = max(sustained_rates) if sustained_rates else None
        result["ratios"] = ratios(result)
    finally:
        if s is not None:
            # pyinstrument renders its report after the graceful shutdown: give it time.
            s.stop_all(timeout=180 if profile else 60)
        devstack.stop_kafka(kh)
        devstack.stop_postgres(ph)
    profiles = {p.stem: str(p.relative_to(ROOT)) for p in prof_dir.glob("*.txt")}
    result["profiles"] = profiles
    path = args.out / f"stack-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    (args.out / "stack-latest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    say(f"results in {path.relative_to(ROOT)}; highest sustained {result.get('highest_sustained_per_s')}/s")
    return 0


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per rate: the stack against the baselines (p99 and throughput)."""
    out = []
    for st, bare, raw in zip(result["stack"], result["bare_fastapi"], result["raw_kafka"], strict=True):

        def div(a: float | None, b: float | None) -> float | None:
            return round(a / b, 2) if a is not None and b else None

        out.append(
            {
                "offered_per_s": st["offered_per_s"],
                "accept_p99_vs_bare_fastapi_p99": div(st["latency_ms"]["p99"], bare["latency_ms"]["p99"]),
                "accept_throughput_vs_bare_fastapi": div(st["achieved_per_s"], bare["achieved_per_s"]),
                "dispatched_p99_vs_two_raw_kafka_hops_p99": div(
                    st["report_to_dispatched_ms"]["p99"],
                    2 * raw["latency_ms"]["p99"] if raw["latency_ms"]["p99"] is not None else None,
                ),
            }
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
