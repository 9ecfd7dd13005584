"""Consumers joining and leaving a group mid-stream: nothing lost, nothing applied twice, offsets end committed."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from .test_reliability import Ctx, ctx  # noqa: F401  (the fixture)


async def test_rebalances_lose_nothing_and_apply_nothing_twice(ctx: Ctx) -> None:  # noqa: F811
    ids: list[uuid.UUID] = []
    ids += await ctx.publish_direct(150)
    first = ctx.spawn("consume", "--batch", "10", group="rebalance")
    await ctx.wait_effects(40)
    second = ctx.spawn("consume", "--batch", "10", group="rebalance")  # joins: partitions move
    ids += await ctx.publish_direct(150)
    await ctx.wait_effects(200)
    first.terminate()  # leaves gracefully: commits what it applied, its partitions move to the second
    assert first.wait(timeout=30) == 0
    ids += await ctx.publish_direct(100)
    got = await ctx.wait_effects(400, timeout=90)
    assert set(got) == set(ids), f"{len(set(ids) - set(got))} messages lost"
    assert set(got.values()) == {1}, "a message was applied twice across a rebalance"
    second.terminate()
    assert second.wait(timeout=30) == 0

    # Offsets were committed after the effects, up to the end of every partition.
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.stack.kafka, group_id="rebalance", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(ctx.topic, p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            assert await consumer.committed(tp) == ends[tp]
    finally:
        await consumer.stop()
