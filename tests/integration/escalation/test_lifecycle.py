"""Lifecycle events move the clocks: real Kafka (the service's consumer, inbox and dead letters) and
real PostgreSQL (its migrated schema); what escalation announces is read back from its outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import store
from escalation.domain import Clock
from escalation.handlers import Escalation
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import (
    ReporterRef,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketExtensionReviewedV1,
    TicketRepliedV1,
    TicketReplyReviewedV1,
    TicketReturnRequestedV1,
    TicketReturnResolvedV1,
    TicketSignedV1,
)
from gridline_messaging.consumer import Consumer
from gridline_messaging.producer import make_producer

SH = ZoneInfo("Asia/Shanghai")
TENANT = "330106"


def sh(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


class Ctx:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], topic: str, producer: Any, escalation: Escalation
    ) -> None:
        self.sessions = sessions
        self.topic = topic
        self.producer = producer
        self.escalation = escalation

    async def send(self, env: Envelope[Any]) -> None:
        await self.producer.send_and_wait(self.topic, env.body(), key=env.subject.encode(), headers=env.headers())

    async def clocks(self, ticket_id: uuid.UUID) -> list[Clock]:
        async with self.sessions() as s:
            return await store.ticket_clocks(s, ticket_id)

    async def events(self, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
        """What escalation queued for Kafka about this ticket, in publication order."""
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(store.outbox.c.headers, store.outbox.c.payload)
                    .where(store.outbox.c.key == str(ticket_id))
                    .order_by(store.outbox.c.id)
                )
            ).all()
        out = []
        for r in rows:
            body = json.loads(r.payload)
            body["type"] = dict(r.headers)["ce_type"].removeprefix("cn.gridline.").rsplit(".v", 1)[0]
            out.append(body)
        return out

    async def until(self, what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await check()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def ctx(stack: Any, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Ctx]:
    topic = f"it.escalation.tickets.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(stack.kafka, "it-escalation")
    await producer.start()
    escalation = Escalation(timezone="Asia/Shanghai")
    consumer = Consumer(
        service="escalation",
        topics=[topic],
        handlers=escalation.handlers(),
        session_factory=sessions,
        inbox=store.inbox,
        producer=producer,
        bootstrap_servers=stack.kafka,
        group_id=f"it-escalation-{uuid.uuid4().hex[:8]}",
        max_attempts=2,
        backoff_initial_s=0.05,
        dead_letter_topic=f"{topic}.dlq",
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield Ctx(sessions, topic, producer, escalation)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
        await producer.stop()


def envelope(data: EventData) -> Envelope[Any]:
    tid = str(data.ticket_id)  # type: ignore[attr-defined]
    return Envelope(source="intake", tenant=TENANT, subject=tid, correlation_id=tid, data=data)


def dispatched(tid: uuid.UUID, no: str, at: datetime, unit: str = "330106005", key: str = "standard-5wd") -> Any:
    return TicketDispatchedV1(
        ticket_id=tid,
        ticket_no=no,
        category_code="0102",
        unit_code=unit,
        grid_code="330106001001",
        sla_policy_key=key,
        dispatched_at=at,
        reporter=ReporterRef(masked_phone="138****0000"),
    )


def common(tid: uuid.UUID, no: str, frm: str, to: str, at: datetime, role: str = "unit") -> dict[str, Any]:
    return dict(
        ticket_id=tid,
        ticket_no=no,
        from_status=frm,
        to_status=to,
        actor_role=role,
        actor="330106005",
        at=at,
        unit_code="330106005",
    )


async def test_sign_pause_extend_reply_redo_close(ctx: Ctx) -> None:
    """签收 stops the sign clock; a 退单 under review pauses, 驳回 resumes and moves the deadline by the
    working time paused; an approved 延期 moves it again (once, even if delivered twice); the reply
    stops it; 退回重办 arms a new round; 办结 ends it."""
    tid, no = uuid.uuid4(), "GL-IT-LIFE-0001"
    # Replayed as of the dispatch: with the real clock, a week already past would be all overdue.
    ctx.escalation.now = lambda: sh(2026, 11, 22, 11)
    try:
        await _sign_pause_extend_reply_redo_close(ctx, tid, no)
    finally:
        ctx.escalation.now = lambda: datetime.now(UTC)


async def _sign_pause_extend_reply_redo_close(ctx: Ctx, tid: uuid.UUID, no: str) -> None:
    # Sunday 22 Nov 2026: the 5 working days run Mon 23 … Fri 27, due at 17:30.
    await ctx.send(envelope(dispatched(tid, no, sh(2026, 11, 22, 11))))
    clocks = await ctx.until("both clocks", lambda: _n_clocks(ctx, tid, 2))
    by = {(c.kind, c.round): c for c in clocks}
    assert by[("handle", 0)].due_at == sh(2026, 11, 27, 17, 30)
    assert by[("sign", 0)].due_at == sh(2026, 11, 23, 17, 30) and by[("sign", 0)].policy_key == "sign-1wd"

    await ctx.send(envelope(TicketSignedV1(**common(tid, no, "dispatched", "accepted", sh(2026, 11, 23, 9, 30)))))
    await ctx.send(
        envelope(
            TicketReturnRequestedV1(
                **common(tid, no, "accepted", "return_requested", sh(2026, 11, 23, 10)),
                reason_code="属地不符",
                basis="不在辖区",
            )
        )
    )
    paused = await ctx.until("paused", lambda: _clock_where(ctx, tid, "handle", 0, lambda c: c.state == "paused"))
    assert paused.paused_at == sh(2026, 11, 23, 10)
    await ctx.send(
        envelope(
            TicketReturnResolvedV1(
                **common(tid, no, "return_requested", "accepted", sh(2026, 11, 23, 12), "platform"),
                approved=False,
                reviewer="派单员-07",
            )
        )
    )
    # Paused 10:00–12:00 on a working day = 2 working hours: Fri 17:30 + 2 wh = Mon 30 Nov 11:00.
    resumed = await ctx.until(
        "resumed", lambda: _clock_where(ctx, tid, "handle", 0, lambda c: c.state == "running" and c.paused_for)
    )
    assert resumed.due_at == sh(2026, 11, 30, 11) and resumed.paused_for == timedelta(hours=2)

    extension = envelope(
        TicketExtensionReviewedV1(
            **common(tid, no, "extension_requested", "accepted", sh(2026, 11, 23, 14), "platform"),
            approved=True,
            working_days=3,
            reviewer="审核员-02",
        )
    )
    await ctx.send(extension)
    await ctx.send(extension)  # redelivered: the inbox applies it once
    extended = await ctx.until("extended", lambda: _clock_where(ctx, tid, "handle", 0, lambda c: c.extension_no))
    assert extended.due_at == sh(2026, 12, 3, 17, 30)

    await ctx.send(
        envelope(TicketRepliedV1(**common(tid, no, "accepted", "replied", sh(2026, 11, 24, 10)), reply="已清理"))
    )
    await ctx.send(
        envelope(
            TicketReplyReviewedV1(
                **common(tid, no, "replied", "accepted", sh(2026, 11, 24, 15), "platform"),
                approved=False,
                reviewer="审核员-02",
            )
        )
    )
    await ctx.send(envelope(TicketClosedV1(**common(tid, no, "pending_callback", "closed", sh(2026, 11, 25, 10)))))
    await ctx.until("round 1 closed", lambda: _clock_where(ctx, tid, "handle", 1, lambda c: c.state == "stopped"))

    final = {(c.kind, c.round): c for c in await ctx.clocks(tid)}
    assert set(final) == {("sign", 0), ("handle", 0), ("handle", 1)}
    assert all(c.state == "stopped" and c.next_due_at is None for c in final.values())
    assert final[("sign", 0)].stopped_at == sh(2026, 11, 23, 9, 30)
    assert final[("handle", 0)].stopped_at == sh(2026, 11, 24, 10) and final[("handle", 0)].extension_no == 1
    assert final[("handle", 1)].started_at == sh(2026, 11, 24, 15)

    everything = await ctx.events(tid)
    # The platform's reviews are timed too: the 退单 review and the reply review, each stopped by its review.
    reviews = [(e["type"], e["review"], e.get("reason")) for e in everything if e["type"].startswith("review.")]
    assert reviews == [
        ("review.clock_started", "return", None),
        ("review.clock_stopped", "return", "reviewed"),
        ("review.clock_started", "reply", None),
        ("review.clock_stopped", "reply", "reviewed"),
    ]
    events = [e for e in everything if e["type"].startswith("sla.")]
    summary = [(e["type"], e.get("clock"), e.get("round"), e.get("reason")) for e in events]
    assert summary == [
        ("sla.clock_started", "handle", 0, None),
        ("sla.clock_stopped", "sign", 0, "signed"),
        ("sla.clock_paused", "handle", 0, "return_requested"),
        ("sla.clock_resumed", "handle", 0, None),
        ("sla.clock_extended", "handle", 0, None),
        ("sla.clock_stopped", "handle", 0, "replied"),
        ("sla.clock_started", "handle", 1, None),
        ("sla.clock_stopped", "handle", 1, "closed"),
    ]
    assert events[0]["sign_due_at"] is not None and events[1]["on_time"] is True
    assert events[4]["due_at"].startswith("2026-12-03T17:30")


async def test_redispatch_after_approved_return_starts_new_clocks_for_the_new_unit(ctx: Ctx) -> None:
    tid, no = uuid.uuid4(), "GL-IT-LIFE-0002"
    await ctx.send(envelope(dispatched(tid, no, sh(2026, 11, 22, 11), unit="330106005")))
    await ctx.until("first clocks", lambda: _n_clocks(ctx, tid, 2))
    await ctx.send(
        envelope(
            TicketReturnRequestedV1(
                **common(tid, no, "dispatched", "return_requested", sh(2026, 11, 23, 10)),
                reason_code="职能不符",
                basis="属市场监管",
            )
        )
    )
    await ctx.send(
        envelope(
            TicketReturnResolvedV1(
                **common(tid, no, "return_requested", "awaiting_manual", sh(2026, 11, 23, 11), "platform"),
                approved=True,
                reviewer="派单员-07",
            )
        )
    )
    await ctx.send(envelope(dispatched(tid, no, sh(2026, 11, 23, 14), unit="330106-SCJGJ-WX")))
    clocks = await ctx.until("second round", lambda: _n_clocks(ctx, tid, 4))
    by = {(c.kind, c.round): c for c in clocks}
    assert by[("handle", 0)].state == by[("sign", 0)].state == "stopped"
    assert by[("handle", 1)].unit_code == by[("sign", 1)].unit_code == "330106-SCJGJ-WX"
    assert by[("handle", 1)].state == "running" and by[("handle", 1)].started_at == sh(2026, 11, 23, 14)
    # Mon 14:00 → 5 working days from the next day: Tue 24 … Mon 30 Nov.
    assert by[("handle", 1)].due_at == sh(2026, 11, 30, 17, 30)
    reasons = [e.get("reason") for e in await ctx.events(tid) if e["type"] == "sla.clock_stopped"]
    assert sorted(reasons) == ["returned", "returned"]


async def test_a_late_dispatch_fires_what_is_already_due_once(ctx: Ctx) -> None:
    """A 特急 order whose dispatch reaches us 3 h late: warning, breach and the first rungs fire at
    once, late but not lost; a redelivered dispatch arms nothing twice."""
    tid, no = uuid.uuid4(), "GL-IT-LIFE-0003"
    env = envelope(dispatched(tid, no, datetime.now(UTC) - timedelta(hours=3), key="critical-2h"))
    await ctx.send(env)
    await ctx.send(env)
    await ctx.until("clocks", lambda: _n_clocks(ctx, tid, 2))
    await asyncio.sleep(1.0)  # give a second delivery time to do harm
    types = [(e["type"], e.get("clock"), e.get("step_code")) for e in await ctx.events(tid)]
    assert types.count(("sla.clock_started", "handle", None)) == 1
    assert ("sla.breached", "handle", None) in types and ("sla.breached", "sign", None) in types
    assert types.count(("sla.escalated", "handle", "E2")) == 1 and types.count(("sla.escalated", "sign", "E2")) == 1
    assert len(await ctx.clocks(tid)) == 2


async def _n_clocks(ctx: Ctx, tid: uuid.UUID, n: int) -> list[Clock] | None:
    clocks = await ctx.clocks(tid)
    return clocks if len(clocks) >= n else None


async def _clock_where(ctx: Ctx, tid: uuid.UUID, kind: str, round_no: int, ok: Callable[[Clock], Any]) -> Clock | None:
    for c in await ctx.clocks(tid):
        if c.kind == kind and c.round == round_no and ok(c):
            return c
    return None


async def test_a_deadline_in_a_year_without_calendar_data_is_dead_lettered_never_guessed(ctx: Ctx, stack: Any) -> None:
    """Dispatched on 28 Dec 2026, 5 working days reach into 2027, which chinese_calendar does not
    cover and no override declares: no clock is armed, the dispatch goes to the dead letters (to be
    replayed once the notice is entered) and the alert counter moves."""
    from escalation import metrics
    from gridline_messaging.dlq import list_dead_letters

    gaps_before = metrics.CALENDAR_GAPS._value.get()
    tid, no = uuid.uuid4(), "GL-IT-LIFE-2027"
    env = envelope(dispatched(tid, no, sh(2026, 12, 28, 10)))
    await ctx.send(env)

    async def dead_lettered() -> Any:
        letters = await list_dead_letters(stack.kafka, "escalation", f"{ctx.topic}.dlq")
        return [d for d in letters if d.ce_id == str(env.id)]

    letters = await ctx.until("dead letter", dead_lettered)
    assert "2027" in letters[0].error
    assert await ctx.clocks(tid) == []
    assert metrics.CALENDAR_GAPS._value.get() > gaps_before
