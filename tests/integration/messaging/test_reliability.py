"""The messaging guarantees, against the real broker and database, with real process kills."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gridline_boot.db import create_engine, session_factory
from gridline_messaging import dlq, outbox

from .harness import make_event, tables

HARNESS = Path(__file__).with_name("harness.py")
ROOT = Path(__file__).resolve().parents[3]


class Ctx:
    def __init__(self, stack: Any, engine: AsyncEngine, schema: str, topic: str) -> None:
        self.stack = stack
        self.engine = engine
        self.schema = schema
        self.topic = topic
        self.dead_letter_topic = f"{topic}.dlq"
        _, self.outbox, self.inbox, self.effect = tables(schema)
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, mode: str, *extra: str, group: str = "harness", service: str = "harness"
    ) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            str(HARNESS),
            mode,
            "--kafka",
            self.stack.kafka,
            "--db",
            self.stack.database_url,
            "--schema",
            self.schema,
            "--topic",
            self.topic,
            "--group",
            group,
            "--service",
            service,
            "--dead-letter-topic",
            self.dead_letter_topic,
            *extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    async def publish_direct(self, n: int, *, duplicate_each: bool = False) -> list[uuid.UUID]:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.kafka, enable_idempotence=True)
        await producer.start()
        ids = []
        try:
            for i in range(n):
                env = make_event(i)
                ids.append(env.id)
                for _ in range(2 if duplicate_each else 1):
                    await producer.send_and_wait(
                        self.topic, env.body(), key=env.subject.encode(), headers=env.headers()
                    )
        finally:
            await producer.stop()
        return ids

    async def effects(self) -> dict[uuid.UUID, int]:
        async with self.engine.connect() as c:
            rows = (await c.execute(select(self.effect.c.event_id, self.effect.c.applied))).all()
        return {r.event_id: r.applied for r in rows}

    async def wait_dead_letters(self, count: int, timeout: float = 90) -> list[dlq.DeadLetter]:
        # Generous: five handler attempts with backoff plus a subprocess start, on a busy machine
        # (30 s was once not enough in CI); it returns as soon as the letters are there.
        deadline = time.monotonic() + timeout
        while True:
            letters = await dlq.list_dead_letters(self.stack.kafka, f"dlq-{self.schema}", topic=self.dead_letter_topic)
            mine = [d for d in letters if d.original_topic == self.topic]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            await asyncio.sleep(0.3)

    async def wait_effects(self, count: int, timeout: float = 60) -> dict[uuid.UUID, int]:
        deadline = time.monotonic() + timeout
        while True:
            got = await self.effects()
            if len(got) >= count or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.2)


@pytest.fixture
async def ctx(stack: Any) -> AsyncIterator[Ctx]:
    suffix = uuid.uuid4().hex[:10]
    schema, topic = f"msgtest_{suffix}", f"test.messaging.{suffix}"
    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    md, *_ = tables(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(md.create_all)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    await admin.close()
    c = Ctx(stack, engine, schema, topic)
    try:
        yield c
    finally:
        for p in c.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def test_same_message_twice_is_applied_once(ctx: Ctx) -> None:
    ids = await ctx.publish_direct(20, duplicate_each=True)
    proc = ctx.spawn("consume", "--batch", "7")
    got = await ctx.wait_effects(20)
    await asyncio.sleep(1.0)  # give a wrongly non-idempotent consumer time to apply the second copies
    got = await ctx.effects()
    proc.terminate()
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    assert set(got) == set(ids)
    assert set(got.values()) == {1}
    async with ctx.engine.connect() as c:
        inbox_rows = (await c.execute(select(func.count()).select_from(ctx.inbox))).scalar_one()
    assert inbox_rows == 20


async def test_consumer_killed_between_effect_and_offset_commit(ctx: Ctx) -> None:
    ids = await ctx.publish_direct(30)
    crashing = ctx.spawn("consume", "--batch", "10", "--crash-before-commit")
    assert crashing.wait(timeout=60) == -9  # SIGKILLed itself after the DB commit
    partial = await ctx.effects()
    assert 0 < len(partial) < 30 or len(partial) == 30  # effects of the first batch are durable
    assert partial, "the first batch's effect should have been committed before the kill"
    # Nothing was committed to Kafka, so the restarted consumer gets everything again.
    survivor = ctx.spawn("consume", "--batch", "10")
    got = await ctx.wait_effects(30)
    await asyncio.sleep(1.0)
    got = await ctx.effects()
    survivor.terminate()
    assert survivor.wait(timeout=30) == 0
    assert set(got) == set(ids)
    assert set(got.values()) == {1}, "a replayed message was applied twice"


async def test_relay_killed_mid_batch_republishes_and_nobody_applies_twice(ctx: Ctx) -> None:
    envs = [make_event(i) for i in range(50)]
    async with session_factory(ctx.engine)() as s, s.begin():
        await outbox.add(s, ctx.outbox, envs, topic=ctx.topic)
    relay = ctx.spawn("relay", "--batch", "50", "--crash-after-ack", "10")
    assert relay.wait(timeout=60) == -9
    async with ctx.engine.connect() as c:
        left = (await c.execute(select(func.count()).select_from(ctx.outbox))).scalar_one()
    assert left == 50, "rows must stay in the outbox when the relay dies before deleting them"
    relay2 = ctx.spawn("relay", "--batch", "50")
    consumer = ctx.spawn("consume")
    got = await ctx.wait_effects(50)
    # The topic really carries duplicates: the first relay's acked sends and the second relay's.
    seen = await _read_ids(ctx.stack.kafka, ctx.topic, minimum=60)
    assert len(seen) > len(set(seen)), "expected republished duplicates on the topic"
    await asyncio.sleep(1.0)
    got = await ctx.effects()
    assert set(got) == {e.id for e in envs}
    assert set(got.values()) == {1}
    async with ctx.engine.connect() as c:
        left = (await c.execute(select(func.count()).select_from(ctx.outbox))).scalar_one()
    assert left == 0
    for p in (relay2, consumer):
        p.terminate()
        assert p.wait(timeout=30) == 0


async def test_relay_keeps_per_ticket_order(ctx: Ctx) -> None:
    # Several events per ticket, interleaved across tickets, must arrive in insertion order per key.
    base = [make_event(i) for i in range(5)]
    envs = []
    for round_ in range(4):
        for b in base:
            e = make_event(round_)
            envs.append(e.model_copy(update={"subject": b.subject}))
    async with session_factory(ctx.engine)() as s, s.begin():
        await outbox.add(s, ctx.outbox, envs, topic=ctx.topic)
    relay = ctx.spawn("relay", "--batch", "7")
    records = await _read_records(ctx.stack.kafka, ctx.topic, minimum=len(envs))
    relay.terminate()
    assert relay.wait(timeout=30) == 0
    by_key: dict[str, list[str]] = {}
    for key, ce_id in records:
        by_key.setdefault(key, []).append(ce_id)
    for b in base:
        expected = [str(e.id) for e in envs if e.subject == b.subject]
        assert by_key[b.subject] == expected


async def test_unreadable_message_is_dead_lettered_and_consumer_carries_on(ctx: Ctx) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=ctx.stack.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(ctx.topic, b"\xff not json", key=b"poison", partition=0)
        bad_headers = make_event(0).headers()
        await producer.send_and_wait(ctx.topic, b"{}", key=b"poison2", headers=bad_headers, partition=0)
    finally:
        await producer.stop()
    ids = await ctx.publish_direct(5)
    proc = ctx.spawn("consume")
    got = await ctx.wait_effects(5)
    assert set(got) == set(ids)
    mine = await ctx.wait_dead_letters(2)
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert {d.reason for d in mine} == {"missing_attribute", "invalid_payload"}
    assert all(d.original_partition == 0 for d in mine)


async def test_failing_handler_goes_to_dead_letter_after_bounded_retries_and_replay(ctx: Ctx) -> None:
    ids = await ctx.publish_direct(6)  # ticket numbers end in 000000 .. 000005
    proc = ctx.spawn("consume", "--fail-type", "000003")
    got = await ctx.wait_effects(5)
    await ctx.wait_dead_letters(1)
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert len(got) == 5 and set(got.values()) == {1}
    service = f"dlq-{ctx.schema}"
    letters = [
        d
        for d in await dlq.list_dead_letters(ctx.stack.kafka, service, topic=ctx.dead_letter_topic)
        if d.original_topic == ctx.topic
    ]
    assert [d.reason for d in letters] == ["handler_failed"]
    assert letters[0].ce_id == str(ids[3])
    assert "this ticket always fails" in letters[0].error
    # After the "fix" (no failing ticket), replay puts it back and it is applied exactly once.
    replayed = await dlq.replay(ctx.stack.kafka, service, offsets={letters[0].offset}, topic=ctx.dead_letter_topic)
    assert [d.ce_id for d in replayed] == [str(ids[3])]
    fixed = ctx.spawn("consume")
    got = await ctx.wait_effects(6)
    await asyncio.sleep(0.5)
    fixed.terminate()
    assert fixed.wait(timeout=30) == 0
    assert set(got) == set(ids) and set((await ctx.effects()).values()) == {1}


async def _read_records(kafka: str, topic: str, minimum: int, timeout: float = 30) -> list[tuple[str, str]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < minimum and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                for r in recs:
                    h = dict(r.headers)
                    out.append((r.key.decode(), h["ce_id"].decode()))
        # Let stragglers in: duplicates may trail the first copies.
        batch = await consumer.getmany(timeout_ms=1000)
        for recs in batch.values():
            out += [(r.key.decode(), dict(r.headers)["ce_id"].decode()) for r in recs]
    finally:
        await consumer.stop()
    return out


async def _read_ids(kafka: str, topic: str, minimum: int) -> list[str]:
    return [ce_id for _, ce_id in await _read_records(kafka, topic, minimum, timeout=15)]
