"""Platform review clocks from lifecycle events: real Kafka (escalation's consumer and inbox) and real
PostgreSQL; the deadline timer runs in-process. A review stops its clock; an overdue review warns,
breaches and escalates to the reviewer (never the unit), each once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation import deadline_store, store
from escalation.deadline_timer import DeadlineTimer
from escalation.handlers import Escalation
from escalation.policy import DEFAULT_POLICIES, Duration, TimeLimit
from escalation.review import ReviewClock
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import (
    ReporterRef,
    TicketDispatchedV1,
    TicketExtensionRequestedV1,
    TicketExtensionReviewedV1,
    TicketRepliedV1,
    TicketReplyReviewedV1,
    TicketReturnRequestedV1,
    TicketReturnResolvedV1,
)
from gridline_messaging.consumer import Consumer
from gridline_messaging.producer import make_producer

TENANT = "330106"


class Ctx:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], topic: str, producer: Any) -> None:
        self.sessions, self.topic, self.producer = sessions, topic, producer

    async def send(self, data: EventData) -> None:
        tid = str(data.ticket_id)  # type: ignore[attr-defined]
        env = Envelope(source="intake", tenant=TENANT, subject=tid, correlation_id=tid, data=data)
        await self.producer.send_and_wait(self.topic, env.body(), key=tid.encode(), headers=env.headers())

    async def reviews(self, tid: uuid.UUID) -> list[ReviewClock]:
        async with self.sessions() as s:
            return await deadline_store.ticket_reviews(s, tid)

    async def events(self, tid: uuid.UUID, prefix: str = "review.") -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(store.outbox.c.headers, store.outbox.c.payload)
                    .where(store.outbox.c.key == str(tid))
                    .order_by(store.outbox.c.id)
                )
            ).all()
        out = []
        for r in rows:
            t = dict(r.headers)["ce_type"].removeprefix("cn.gridline.").rsplit(".v", 1)[0]
            if t.startswith(prefix):
                out.append({**json.loads(r.payload), "type": t})
        return out

    async def until(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := await check()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)
        return result


@pytest.fixture(scope="module")
async def ctx(stack: Any, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Ctx]:
    topic = f"it.escalation.reviews.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(stack.kafka, "it-escalation-reviews")
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
    timer = DeadlineTimer(sessions=sessions, escalation=escalation, interval_s=0.2, batch_max=50)
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(timer.run())]
    try:
        yield Ctx(sessions, topic, producer)
    finally:
        await consumer.stop()
        await timer.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await producer.stop()


def dispatched(tid: uuid.UUID, no: str, at: datetime, key: str) -> TicketDispatchedV1:
    return TicketDispatchedV1(
        ticket_id=tid,
        ticket_no=no,
        category_code="0102",
        unit_code="330106005",
        grid_code="330106001001",
        sla_policy_key=key,
        dispatched_at=at,
        reporter=ReporterRef(masked_phone="138****0000"),
    )


def common(tid: uuid.UUID, no: str, frm: str, to: str, at: datetime, role: str = "unit") -> dict[str, Any]:
    return dict(ticket_id=tid, ticket_no=no, from_status=frm, to_status=to, actor_role=role, actor="330106005", at=at)


async def test_a_return_review_stops_its_clock_on_the_review(ctx: Ctx) -> None:
    tid, no = uuid.uuid4(), "GL-IT-REV-0001"
    now = datetime.now(UTC)
    await ctx.send(dispatched(tid, no, now - timedelta(minutes=5), "standard-5wd"))
    requested = common(tid, no, "dispatched", "return_requested", now)
    await ctx.send(TicketReturnRequestedV1(**requested, reason_code="属地不符", basis="不在辖区"))
    [rc] = await ctx.until("the review clock", lambda: ctx.reviews(tid))
    assert rc.review == "return" and rc.stopped_at is None and rc.due_at > now and rc.policy_key == "standard-5wd"
    resolved = common(tid, no, "return_requested", "accepted", now + timedelta(minutes=30), "platform")
    await ctx.send(TicketReturnResolvedV1(**resolved, approved=False, reviewer="派单员-07"))

    async def stopped() -> list[ReviewClock]:
        return [r for r in await ctx.reviews(tid) if r.stopped_at is not None]

    [rc] = await ctx.until("the review stopped", stopped)
    assert rc.stop_reason == "reviewed" and rc.next_due_at is None
    events = await ctx.events(tid)
    assert [e["type"] for e in events] == ["review.clock_started", "review.clock_stopped"]
    assert events[1]["on_time"] is True and events[1]["review"] == "return"


async def test_an_overdue_reply_review_warns_breaches_and_escalates_to_the_reviewer_once(
    ctx: Ctx, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A tenant policy whose reply review is due 4 s after the request, escalated 2 s after that.
    fast = replace(
        DEFAULT_POLICIES["standard-5wd"],
        key="it-fast-review",
        reply_review=TimeLimit(Duration.natural_hours(4 / 3600)),
        review_escalate_after=Duration.natural_hours(2 / 3600),
    )
    async with sessions() as s, s.begin():
        await store.add_policy_version(s, TENANT, fast)
    tid, no = uuid.uuid4(), "GL-IT-REV-0002"
    now = datetime.now(UTC)
    await ctx.send(dispatched(tid, no, now - timedelta(minutes=5), "it-fast-review"))
    await ctx.send(TicketRepliedV1(**common(tid, no, "accepted", "replied", now), reply="已清理"))

    async def all_fired() -> list[dict[str, Any]]:
        events = await ctx.events(tid)
        return events if any(e["type"] == "review.escalated" for e in events) else []

    await ctx.until("the review to escalate", all_fired)
    await asyncio.sleep(1.0)  # more timer passes: nothing fires twice
    events = await ctx.events(tid)
    types = [e["type"] for e in events]
    assert types == ["review.clock_started", "review.warned", "review.breached", "review.escalated"]
    assert [e.get("recipients") for e in events[1:]] == [["dispatcher"], ["dispatcher"], ["dispatcher", "supervisor"]]
    assert all(e["review"] == "reply" for e in events)
    reviewed = common(tid, no, "replied", "accepted", datetime.now(UTC), "platform")
    await ctx.send(TicketReplyReviewedV1(**reviewed, approved=False, reviewer="审核员-02"))

    async def stopped() -> list[dict[str, Any]]:
        return [e for e in await ctx.events(tid) if e["type"] == "review.clock_stopped"]

    [stop] = await ctx.until("the late review stopped", stopped)
    assert stop["on_time"] is False
    [rc] = await ctx.reviews(tid)
    assert rc.stage == 3 and rc.stop_reason == "reviewed"


async def test_an_extension_review_is_timed_from_the_request_and_stopped_by_the_decision(ctx: Ctx) -> None:
    tid, no = uuid.uuid4(), "GL-IT-REV-0003"
    now = datetime.now(UTC)
    await ctx.send(dispatched(tid, no, now - timedelta(hours=1), "standard-5wd"))
    asked = common(tid, no, "accepted", "extension_requested", now)
    await ctx.send(TicketExtensionRequestedV1(**asked, working_days=3, reason="需协调产权单位"))
    [rc] = await ctx.until("the extension review", lambda: ctx.reviews(tid))
    assert rc.review == "extension" and rc.requested_at == now and rc.due_at > now
    decided = common(tid, no, "extension_requested", "accepted", now + timedelta(hours=2), "platform")
    await ctx.send(TicketExtensionReviewedV1(**decided, approved=False, working_days=3, reviewer="审核员-02"))

    async def stopped() -> list[dict[str, Any]]:
        return [e for e in await ctx.events(tid) if e["type"] == "review.clock_stopped"]

    [stop] = await ctx.until("the extension review stopped", stopped)
    assert stop["review"] == "extension" and stop["on_time"] is True and stop["reason"] == "reviewed"
