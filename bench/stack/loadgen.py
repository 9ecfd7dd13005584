"""Open-loop HTTP load at a fixed offered rate.

Request i is due at start + i/rate whether or not earlier ones have answered (no coordinated
omission): its latency is measured from when it was due, so a server that falls behind shows the
queueing delay its clients would see. Requests are spread over threads, each with its own
HTTP/1.1 keep-alive connection (http.client): on this machine httpx's async client managed only
~120 requests/s per process, which would have measured the generator instead of the server.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Result:
    offered: float
    seconds: float
    latencies: list[float] = field(default_factory=list)  # of 2xx answers
    statuses: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    late_starts: int = 0  # requests that could not even be sent within 1 s of being due
    wall: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def achieved(self) -> float:
        return self.ok / self.wall if self.wall else 0.0


async def run(
    url: str,
    rate: float,
    seconds: float,
    body: Callable[[int], dict[str, Any]],
    *,
    max_in_flight: int = 64,  # httpcore's pool grows slow with hundreds of connections
    keep_bodies: bool = False,
) -> Result:
    res = Result(rate, seconds)
    total = int(rate * seconds)
    gate = asyncio.Semaphore(max_in_flight)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int, due: float) -> None:
            async with gate:
                if time.perf_counter() - due > 1:
                    res.late_starts += 1
                try:
                    r = await client.post(url, json=body(i))
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                    res.statuses[key] = res.statuses.get(key, 0) + 1
                    return
            done = time.perf_counter()
            key = str(r.status_code)
            res.statuses[key] = res.statuses.get(key, 0) + 1
            if 200 <= r.status_code < 300:
                res.latencies.append(done - due)
                if keep_bodies:
                    res.bodies.append(r.json())

        start = time.perf_counter()
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        res.wall = time.perf_counter() - start
    return res


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 2)

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(v[-1] * 1000, 2), "n": len(v)}


def run_threads(
    url: str, rate: float, seconds: float, body: Callable[[int], dict[str, Any]], *, threads: int = 32
) -> Result:
    """The same open-loop schedule, on `threads` blocking keep-alive connections (request i on thread i % threads)."""
    res = Result(rate, seconds)
    total = int(rate * seconds)
    parts = url.split("/", 3)
    host, port = parts[2].split(":")
    path = "/" + parts[3]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for i in range(k, total, threads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif -delay > 1:
                with lock:
                    res.late_starts += 1
            payload = json.dumps(body(i)).encode()
            try:
                conn.request("POST", path, payload, {"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                key = str(r.status)
                ok = 200 <= r.status < 300
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                key, ok = type(exc).__name__, False
            done = time.perf_counter()
            with lock:
                res.statuses[key] = res.statuses.get(key, 0) + 1
                if ok:
                    res.latencies.append(done - due)
        conn.close()

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    res.wall = time.perf_counter() - start
    return res
