"""Baseline: raw aiokafka produce → consume of messages the size of a real ticket.received event,
at a fixed offered rate, with the producer settings Gridline's relay uses (idempotent, acks=all).
Latency is from when a message was due to when the consumer has it."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def run(bootstrap: str, rate: float, seconds: float, size: int, partitions: int = 6) -> dict[str, object]:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    total = int(rate * seconds)
    latencies: list[float] = []
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=topic, auto_offset_reset="earliest", enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await consumer.start()
    await producer.start()
    # Wait for the assignment so the first messages are not timed against a rebalance.
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)  # the topic is empty: this only joins the group
    padding = b"x" * max(0, size - 8)
    done = asyncio.Event()

    async def consume() -> None:
        while len(latencies) < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            now = time.perf_counter()
            for records in batches.values():
                for rec in records:
                    (due,) = struct.unpack(">d", rec.value[:8])  # type: ignore[index]
                    latencies.append(now - due)
            if batches:
                await consumer.commit()
        done.set()

    reader = asyncio.create_task(consume())
    start = time.perf_counter()
    try:
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topic, struct.pack(">d", due) + padding, key=uuid.uuid4().bytes)
        await producer.flush()
        await asyncio.wait_for(done.wait(), timeout=seconds + 60)
        wall = time.perf_counter() - start
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    return {"latencies": latencies, "wall": wall, "offered": rate, "messages": total}
