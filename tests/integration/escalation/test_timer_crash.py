"""Two escalation instances share the durable timer (SKIP LOCKED) while they are SIGKILLed and
restarted: every due step fires exactly once, late at worst. Real service processes, real PostgreSQL."""

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
from escalation.domain import arm_clock
from escalation.handlers import plan_of
from escalation.policy import DEFAULT_POLICIES
from gridline_calendar import WorkCalendar
from gridline_contracts.intake import ReporterRef, TicketDispatchedV1

from .conftest import ROOT, service_env

N = 2000
CRITICAL = DEFAULT_POLICIES["critical-2h"]
EXPECTED = [("sla.warned", None), ("sla.escalated", "E1"), ("sla.breached", None), ("sla.escalated", "E2")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, name: str, stack: Any, db: str, log_dir: Path) -> None:
        self.name = name
        self.stack = stack
        self.db = db
        self.log = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = service_env(
            self.stack,
            self.db,
            ROLES='["worker"]',
            HTTP_PORT=str(free_port()),
            TIMER_BATCH_MAX="50",
            TIMER_INTERVAL_S="0.2",
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


async def arm(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """N 特急 clocks whose warnings are past and whose deadlines fall from 10 s ago to 10 s ahead."""
    cal = WorkCalendar()
    async with sessions() as s, s.begin():
        for i in range(N):
            started = now - timedelta(hours=2) + timedelta(seconds=-10 + 20 * i / N)
            tid = uuid.uuid4()
            e = TicketDispatchedV1(
                ticket_id=tid,
                ticket_no=f"GL-IT-TIMER-{i:05d}",
                category_code="0102",
                unit_code="330106005",
                sla_policy_key="critical-2h",
                dispatched_at=started,
                reporter=ReporterRef(),
            )
            clock, _ = arm_clock(e, "330106", CRITICAL, cal)
            await store.insert_clock(s, clock, plan_of(clock, CRITICAL, cal))


async def settled(sessions: async_sessionmaker[AsyncSession], horizon: datetime) -> bool:
    async with sessions() as s:
        due = await s.scalar(select(func.count()).select_from(store.clock).where(store.clock.c.next_due_at <= horizon))
    return due == 0


async def test_two_instances_killed_and_restarted_fire_every_step_once(
    stack: Any, esc_db: str, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    await arm(sessions, now)
    a, b = Instance("a", stack, esc_db, tmp_path), Instance("b", stack, esc_db, tmp_path)
    a.start()
    b.start()
    try:
        # Kill each instance mid-stream (the deadlines keep falling due for 10 s) and bring it back.
        for victim in (a, b, a, b):
            await asyncio.sleep(2.0)
            victim.kill()
            victim.start()
        deadline = time.monotonic() + 120
        horizon = now + timedelta(seconds=11)
        while not await settled(sessions, horizon):
            assert time.monotonic() < deadline, f"steps still due; logs in {tmp_path}"
            assert all(i.alive() for i in (a, b)), f"an instance died; logs in {tmp_path}"
            await asyncio.sleep(0.5)
    finally:
        for inst in (a, b):
            inst.kill(signal.SIGTERM)

    async with sessions() as s:
        rows = (await s.execute(select(store.outbox.c.key, store.outbox.c.headers, store.outbox.c.payload))).all()
    fired: dict[str, Counter[tuple[str, str | None]]] = {}
    for r in rows:
        ce_type = dict(r.headers)["ce_type"].removeprefix("cn.gridline.").rsplit(".v", 1)[0]
        fired.setdefault(r.key, Counter())[(ce_type, json.loads(r.payload).get("step_code"))] += 1
    assert len(fired) == N, f"{N - len(fired)} tickets fired nothing"
    wrong = {k: v for k, v in fired.items() if v != Counter(EXPECTED)}
    assert not wrong, f"{len(wrong)} tickets with a step lost or doubled, e.g. {next(iter(wrong.items()))}"
    async with sessions() as s:
        states = (
            await s.execute(select(store.clock.c.colour, store.clock.c.level, func.count()).group_by("colour", "level"))
        ).all()
    assert [tuple(x) for x in states] == [("red", "E2", N)]
