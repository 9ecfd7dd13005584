"""Backfill of routing's read model from intake's history (``python -m routing rebuild-tickets``) on
real Kafka and PostgreSQL: a topic that already holds tickets routing never consumed. After the
rebuild, duplicates are found against those tickets, nothing already decided is routed again even
by a consumer group reading from the earliest offset, and undecided tickets are still routed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import (
    TicketClosedV1,
    TicketDispatchedV1,
    TicketMergedV1,
    TicketSignedV1,
)
from gridline_messaging.consumer import Consumer
from routing import store, synthcity
from routing.app import handler_table
from routing.handlers import Routing
from routing.rebuild import rebuild

from .conftest import ROOT, Ctx, follow_up, received, until

pytestmark = pytest.mark.asyncio(loop_scope="session")


def transition(first: Envelope[Any], cls: Any, frm: str, to: str, **extra: Any) -> Envelope[Any]:
    e = first.data
    data = cls(
        ticket_id=e.ticket_id,
        ticket_no=e.ticket_no,
        from_status=frm,
        to_status=to,
        actor_role="unit",
        actor="330110-SW",
        at=datetime.now(UTC),
        **extra,
    )
    return follow_up(first, data)


def dispatched(first: Envelope[Any], unit: str) -> Envelope[Any]:
    e = first.data
    data = TicketDispatchedV1(
        ticket_id=e.ticket_id,
        ticket_no=e.ticket_no,
        category_code=e.category_code,
        unit_code=unit,
        grid_code="330110001001001",
        sla_policy_key="x",
        dispatched_at=datetime.now(UTC),
        reporter=e.reporter,
    )
    return follow_up(first, data)


async def test_rebuild_from_history_then_a_new_group_from_earliest(
    ctx: Ctx, stack: Any, city: synthcity.SynthCity, routing: Routing, sessions: async_sessionmaker[AsyncSession],
    routing_db: str,
) -> None:  # fmt: skip
    tenant = city.tenant
    topic = f"it.routing.history.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()

    # Intake's history, from before routing consumed anything of it.
    spot = city.cell_centre(20, 12)
    a = received(tenant, "200102", point=spot)  # dispatched and signed: open, with its unit
    b = received(tenant, "200102", point=city.cell_centre(14, 20))  # closed
    c = received(tenant, "200102", point=spot)  # merged into a
    d = received(tenant, "200102", point=city.cell_centre(20, 34))  # never decided
    e = received(tenant, "200102", point=spot)  # only a late event: its ticket.received is gone
    history = [
        a,
        dispatched(a, "330110-CGJ"),
        transition(a, TicketSignedV1, "dispatched", "accepted"),
        b,
        dispatched(b, "330110-CGJ"),
        transition(b, TicketClosedV1, "pending_callback", "closed"),
        c,
        transition(c, TicketMergedV1, "received", "merged", parent_ticket_id=a.data.ticket_id, parent_ticket_no="x"),
        d,
        transition(e, TicketSignedV1, "dispatched", "accepted"),
    ]
    for env in history:
        await ctx.producer.send_and_wait(topic, env.body(), key=env.subject.encode(), headers=env.headers())

    group = f"it-rebuild-{uuid.uuid4().hex[:8]}"
    report = await rebuild(sessions, stack.kafka, topic=topic, consumer_group=group)
    assert (report.events, report.tickets, report.inserted) == (10, 4, 3)
    assert (report.undecided, report.without_received, report.already_known) == (1, 1, 0)
    assert dict(report.by_status) == {"accepted": 1, "closed": 1, "merged": 1}
    async with sessions() as s:
        row_a, row_b, row_c = [await store.get_ticket_row(s, t.data.ticket_id) for t in (a, b, c)]
        assert await store.get_ticket_row(s, d.data.ticket_id) is None  # left for the consumer to route
        assert await store.get_ticket_row(s, e.data.ticket_id) is None
    assert (row_a.status, row_a.unit_code, row_a.duplicate_count) == ("accepted", "330110-CGJ", 1)
    assert row_b.status == "closed"
    assert (row_c.status, row_c.parent_ticket_id) == ("merged", a.data.ticket_id)

    # The command itself, again: idempotent.
    env = {**os.environ, "DATABASE_URL": routing_db, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka}
    cmd = [sys.executable, "-m", "routing", "rebuild-tickets", "--topic", topic, "--group", group]
    r = await asyncio.to_thread(subprocess.run, cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "inserted 0" in r.stdout and "already known 3" in r.stdout

    # A brand-new consumer group reads the topic from the earliest offset: the decided tickets are
    # skipped (their events are in the inbox), the undecided one is routed, nothing is routed twice.
    consumer = Consumer(
        service="routing",
        topics=[topic],
        handlers=handler_table(routing),
        session_factory=sessions,
        inbox=store.inbox,
        producer=ctx.producer,
        bootstrap_servers=stack.kafka,
        group_id=group,
        max_attempts=2,
        backoff_initial_s=0.05,
        dead_letter_topic=f"{topic}.dlq",
    )
    task = asyncio.create_task(consumer.run())
    try:
        [routed] = await ctx.until_events(d.subject, 1)
        assert routed["type"] == "dispatch.assigned"
        # A new report at a's spot is a duplicate of a, which routing only knows from the rebuild.
        f = received(tenant, "200102", point=spot)
        await ctx.producer.send_and_wait(topic, f.body(), key=f.subject.encode(), headers=f.headers())
        [dup] = await ctx.until_events(f.subject, 1)
        assert dup["type"] == "dispatch.duplicate_found" and dup["parent_ticket_id"] == a.subject
        for t in (a, b, c, e):
            assert await ctx.events(t.subject) == []  # never routed (again)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
    async with sessions() as s:
        assert (await store.get_ticket_row(s, a.data.ticket_id)).duplicate_count == 2

    async def quiet() -> bool:
        return all([await ctx.events(t.subject) == [] for t in (a, b, c)])

    assert await until("no events for decided tickets", quiet)
