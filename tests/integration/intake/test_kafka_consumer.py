"""routing's decisions reach intake over real Kafka through intake's own handler table: the return
flow and a duplicate, each delivered twice, applied once (inbox), and a message for an unknown
ticket dead-lettered without stopping the rest. Unique topics and group, so nothing else is touched."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import select

from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.routing import DispatchDuplicateFoundV1, DispatchReturnReviewedV1
from gridline_messaging.consumer import Consumer
from gridline_messaging.producer import make_producer
from intake import store
from intake.app import HANDLERS

from .conftest import TENANT, Intake
from .test_lifecycle import OTHER_UNIT, UNIT, assigned, dispatched


async def history(intake: Intake, tid: str) -> list[str]:
    r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/history", headers=intake.staff("platform"))
    return [h["to_status"] for h in r.json()]


async def test_routing_events_over_kafka_are_applied_once(intake: Intake, stack: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"test.intake.dispatch.{suffix}", f"test.intake.dlq.{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(dlq, 1, 1)])
    await admin.close()

    a = await dispatched(intake)
    unit = intake.staff("unit", UNIT)
    r = await intake.client.post(
        f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}/return-request",
        json={"reason_code": "not_our_duty", "basis": "依三定方案属市场监管职责"},
        headers=unit,
    )
    assert r.status_code == 200
    child = await intake.report()
    now = datetime.now(UTC)
    events: list[EventData] = [
        DispatchReturnReviewedV1(
            ticket_id=uuid.UUID(a["ticket_id"]),
            unit_code=UNIT,
            approved=False,
            reviewer="d-7",
            reason="属本单位",
            decided_at=now,
        ),
        DispatchDuplicateFoundV1(
            ticket_id=uuid.UUID(child["ticket_id"]),
            parent_ticket_id=uuid.UUID(a["ticket_id"]),
            rule="same-place",
            decided_at=now,
        ),
        DispatchDuplicateFoundV1(ticket_id=uuid.uuid4(), parent_ticket_id=uuid.uuid4(), rule="ghost", decided_at=now),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            env = Envelope(source="routing", tenant=TENANT, subject=str(e.ticket_id), correlation_id="c", data=e)  # type: ignore[attr-defined]
            for _ in range(2):  # at-least-once: every message arrives twice
                await producer.send_and_wait(topic, env.body(), key=env.subject.encode(), headers=env.headers())
    finally:
        await producer.stop()

    dlq_producer = make_producer(stack.kafka, "intake-test")
    await dlq_producer.start()
    consumer = Consumer(
        service="intake",
        group_id=f"intake-test-{suffix}",
        topics=[topic],
        handlers=HANDLERS,
        session_factory=intake.sessions,
        inbox=store.inbox,
        producer=dlq_producer,
        bootstrap_servers=stack.kafka,
        max_attempts=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.1,
        dead_letter_topic=dlq,
    )
    task = asyncio.create_task(consumer.run())
    try:
        deadline = time.monotonic() + 60
        while True:
            h1, h2 = await history(intake, a["ticket_id"]), await history(intake, child["ticket_id"])
            if h1[-1:] == ["accepted"] and h2[-1:] == ["merged"]:
                break
            assert time.monotonic() < deadline, (h1, h2)
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # let the duplicates through too
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
        await dlq_producer.stop()
    assert await history(intake, a["ticket_id"]) == ["received", "dispatched", "return_requested", "accepted"]
    assert await history(intake, child["ticket_id"]) == ["received", "merged"]
    types = await intake.outbox_types(a["ticket_id"])
    assert types.count("cn.gridline.ticket.return_resolved.v1") == 1
    # The decision about a ticket intake never had went to the dead-letter topic.
    reader = AIOKafkaConsumer(dlq, bootstrap_servers=stack.kafka, auto_offset_reset="earliest", group_id=None)
    await reader.start()
    try:
        batch = await reader.getmany(timeout_ms=10_000)
        keys = {rec.key for recs in batch.values() for rec in recs}
    finally:
        await reader.stop()
    assert keys == {str(events[2].ticket_id).encode()}  # type: ignore[attr-defined]


async def test_reassignment_before_signing_over_kafka(intake: Intake, stack: Any) -> None:
    """Routing's 改派 of a dispatched, unsigned ticket: the first dispatch and the reassignment both
    arrive as dispatch.assigned over Kafka (each twice); the ticket moves to the new unit once, with a
    history line and a ticket.dispatched naming the previous unit; the first unit loses it."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"test.intake.reassign.{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()

    a = await intake.report()
    tid = uuid.UUID(a["ticket_id"])
    first, second = assigned(a["ticket_id"], UNIT), assigned(a["ticket_id"], OTHER_UNIT)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, enable_idempotence=True)
    await producer.start()
    try:
        for e in (first, second):
            env = Envelope(source="routing", tenant=TENANT, subject=str(tid), correlation_id="c", data=e)
            for _ in range(2):
                await producer.send_and_wait(topic, env.body(), key=env.subject.encode(), headers=env.headers())
    finally:
        await producer.stop()

    dlq_producer = make_producer(stack.kafka, "intake-test")
    await dlq_producer.start()
    consumer = Consumer(
        service="intake",
        group_id=f"intake-test-{suffix}",
        topics=[topic],
        handlers=HANDLERS,
        session_factory=intake.sessions,
        inbox=store.inbox,
        producer=dlq_producer,
        bootstrap_servers=stack.kafka,
        max_attempts=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.1,
        dead_letter_topic=f"test.intake.dlq.{suffix}",
    )
    task = asyncio.create_task(consumer.run())
    try:
        deadline = time.monotonic() + 60
        while (await history(intake, a["ticket_id"])) != ["received", "dispatched", "dispatched"]:
            assert time.monotonic() < deadline, await history(intake, a["ticket_id"])
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # let the duplicates through too
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
        await dlq_producer.stop()

    r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/history", headers=intake.staff("platform"))
    lines = r.json()
    assert [h["to_status"] for h in lines] == ["received", "dispatched", "dispatched"]
    assert "改派至" in lines[-1]["note"] and f"原承办单位 {UNIT} 未签收" in lines[-1]["note"]
    assert (await intake.outbox_types(str(tid))).count("cn.gridline.ticket.dispatched.v1") == 2
    async with intake.sessions() as s:
        row = (
            await s.execute(
                select(store.outbox.c.payload)
                .where(store.outbox.c.key == str(tid))
                .order_by(store.outbox.c.id.desc())
                .limit(1)
            )
        ).scalar_one()
    data = json.loads(row)
    assert data["unit_code"] == OTHER_UNIT and data["previous_unit_code"] == UNIT
    # The first unit can no longer sign (it is not its ticket any more); the new unit signs it.
    old = await intake.client.post(
        f"/v1/tenants/{TENANT}/tickets/{tid}/sign", json={}, headers=intake.staff("unit", UNIT)
    )
    assert old.status_code == 404 and old.json()["error"]["code"] == "ticket_not_found"
    new = await intake.client.post(
        f"/v1/tenants/{TENANT}/tickets/{tid}/sign", json={}, headers=intake.staff("unit", OTHER_UNIT)
    )
    assert new.status_code == 200 and new.json()["status"] == "accepted"
