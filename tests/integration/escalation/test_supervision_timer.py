"""Supervision-record deadlines are durable timers: two escalation instances, SIGKILLed and restarted
while deadlines fall due, announce every record once and fire every overdue one exactly once; a record
closed (销号) before its deadline never fires. Real service processes, real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import store
from escalation.handlers import Escalation
from escalation.supervision import Supervision

from .conftest import ROOT, service_env

N = 400
TENANT = "330106"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, name: str, stack: Any, db: str, log_dir: Path) -> None:
        self.name, self.stack, self.db = name, stack, db
        self.log = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = service_env(
            self.stack,
            self.db,
            ROLES='["worker"]',  # no relay: the outbox keeps every event for the test to count
            HTTP_PORT=str(free_port()),
            TIMER_BATCH_MAX="25",
            DEADLINE_INTERVAL_S="0.2",
        )
        out = open(self.log, "ab")  # noqa: SIM115 - the child's for its whole life
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "escalation", "run"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.popen is not None
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
        self.popen.wait(timeout=60)


def records(now: datetime) -> list[Supervision]:
    """N 督办单 whose report-back deadlines fall from 5 s ago to 10 s ahead."""
    out = []
    for i in range(N):
        due = now + timedelta(seconds=-5 + 15 * i / N)
        out.append(
            Supervision(
                id=uuid.uuid4(),
                tenant=TENANT,
                ticket_id=uuid.uuid4(),
                ticket_no=f"GL-IT-SUP-{i:04d}",
                unit_code="330106005",
                kind="督办单",
                step_code="E3",
                recipients=("unit_head", "sponsor_unit", "supervisor"),
                opened_at=due - timedelta(days=3),
                due_at=due,
            )
        )
    return out


async def pending(sessions: async_sessionmaker[AsyncSession], horizon: datetime) -> int:
    t = store.supervision.c
    async with sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(store.supervision)
            .where(
                (t.announced_at.is_(None)) | (t.closed_at.is_(None) & t.overdue_at.is_(None) & (t.due_at <= horizon))
            )
        )
    return int(n or 0)


async def test_two_instances_killed_and_restarted_fire_each_supervision_deadline_once(
    stack: Any, esc_db: str, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    recs = records(now)
    escalation = Escalation(timezone="Asia/Shanghai")
    async with sessions() as s, s.begin():
        await store.add_supervisions(s, recs)
    # 销号 before the deadline for every 8th record (some of them already past due, none fired yet).
    closed = {r.id for r in recs[::8]}
    async with sessions() as s, s.begin():
        for rid in closed:
            assert await escalation.close_supervision(s, TENANT, rid, "督查-01", "现场核实已整改") is not None

    a, b = Instance("a", stack, esc_db, tmp_path), Instance("b", stack, esc_db, tmp_path)
    a.start()
    b.start()
    try:
        for victim in (a, b, a, b):  # kill each mid-stream (deadlines keep falling due for 10 s), restart
            await asyncio.sleep(2.5)
            victim.kill()
            victim.start()
        horizon = now + timedelta(seconds=10.5)
        deadline = time.monotonic() + 120
        while await pending(sessions, horizon):
            assert time.monotonic() < deadline, f"deadlines still pending; logs in {tmp_path}"
            assert a.alive() and b.alive(), f"an instance died; logs in {tmp_path}"
            await asyncio.sleep(0.5)
    finally:
        for inst in (a, b):
            inst.kill(signal.SIGTERM)

    async with sessions() as s:
        rows = (await s.execute(select(store.outbox.c.headers, store.outbox.c.payload))).all()
    fired: Counter[tuple[str, str]] = Counter()
    for r in rows:
        ce_type = dict(r.headers)["ce_type"].removeprefix("cn.gridline.").rsplit(".v", 1)[0]
        body = json.loads(r.payload)
        fired[(ce_type, body["supervision_id"])] += 1
        if ce_type == "supervision.overdue":
            assert body["recipients"] == ["unit_head", "sponsor_unit", "supervisor", "grid_head"]
            assert datetime.fromisoformat(body["detected_at"]) >= datetime.fromisoformat(body["due_at"])
    expected: Counter[tuple[str, str]] = Counter()
    for r in recs:
        expected[("supervision.opened", str(r.id))] = 1
        if r.id in closed:
            expected[("supervision.closed", str(r.id))] = 1
        else:
            expected[("supervision.overdue", str(r.id))] = 1
    assert fired == expected, (
        f"lost: {list((expected - fired).items())[:3]}, doubled: {list((fired - expected).items())[:3]}"
    )
    async with sessions() as s:
        never = await s.scalar(
            select(func.count())
            .select_from(store.supervision)
            .where(store.supervision.c.id.in_(closed))
            .where(store.supervision.c.overdue_at.is_not(None))
        )
    assert never == 0
