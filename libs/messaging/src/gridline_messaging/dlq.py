"""List and replay dead letters.

    python -m gridline_messaging.dlq list <service>
    python -m gridline_messaging.dlq replay <service> [--offset N ...]

``replay`` puts messages back on their original topic with their original ``ce_id``: the consumer
that failed tries again, and every other consumer of that topic skips them through its inbox.
Without ``--offset`` it replays everything not replayed before, tracked by the consumer group
``<service>.dlq-replay``, so running it twice does not replay twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from gridline_contracts.topics import dead_letter


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    original_topic: str
    original_partition: int
    original_offset: int
    consumer: str
    reason: str
    error: str
    at: str
    ce_type: str | None
    ce_id: str | None
    key: str | None
    replayed: bool


def _h(rec: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in rec.headers or ()}


def _to_dead_letter(rec: ConsumerRecord[bytes, bytes], replayed_below: int) -> DeadLetter:
    h = _h(rec)
    return DeadLetter(
        offset=rec.offset,
        original_topic=h.get("dlq_topic", ""),
        original_partition=int(h.get("dlq_partition", "-1")),
        original_offset=int(h.get("dlq_offset", "-1")),
        consumer=h.get("dlq_consumer", ""),
        reason=h.get("dlq_reason", ""),
        error=h.get("dlq_error", ""),
        at=h.get("dlq_at", ""),
        ce_type=h.get("ce_type"),
        ce_id=h.get("ce_id"),
        key=rec.key.decode("utf-8", "replace") if rec.key else None,
        replayed=rec.offset < replayed_below,
    )


async def _read_all(
    bootstrap: str, service: str, group: str | None, topic: str | None = None
) -> tuple[list[ConsumerRecord[bytes, bytes]], AIOKafkaConsumer, TopicPartition]:
    topic = topic or dead_letter(service).name
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(topic, 0)  # dead-letter topics have one partition: a total order to replay in
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    await consumer.seek_to_beginning(tp)
    out: list[ConsumerRecord[bytes, bytes]] = []
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        out.extend(r for r in batch.get(tp, []) if r.offset < end)
    return out, consumer, tp


async def list_dead_letters(bootstrap: str, service: str, topic: str | None = None) -> list[DeadLetter]:
    records, consumer, tp = await _read_all(bootstrap, service, f"{service}.dlq-replay", topic)
    try:
        committed = await consumer.committed(tp) or 0
    finally:
        await consumer.stop()
    return [_to_dead_letter(r, committed) for r in records]


async def replay(
    bootstrap: str, service: str, offsets: set[int] | None = None, topic: str | None = None
) -> list[DeadLetter]:
    group = f"{service}.dlq-replay"
    records, consumer, tp = await _read_all(bootstrap, service, group, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    replayed: list[DeadLetter] = []
    try:
        committed = await consumer.committed(tp) or 0
        for rec in records:
            if offsets is not None and rec.offset not in offsets:
                continue
            if offsets is None and rec.offset < committed:
                continue
            dl = _to_dead_letter(rec, committed)
            if not dl.original_topic:
                continue
            headers = [(k, v) for k, v in rec.headers or () if not k.startswith("dlq_")]
            await producer.send_and_wait(dl.original_topic, value=rec.value, key=rec.key, headers=headers)
            replayed.append(dl)
        if offsets is None and records:
            await consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "")})
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gridline_messaging.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=["list", "replay"])
    p.add_argument("service", choices=["intake", "routing", "escalation", "notify"])
    p.add_argument("--offset", type=int, action="append", help="replay only these dead-letter offsets")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = p.parse_args(argv)
    if not args.bootstrap:
        p.error("KAFKA_BOOTSTRAP_SERVERS is not set")
    result: list[Any]
    if args.command == "list":
        result = asyncio.run(list_dead_letters(args.bootstrap, args.service))
    else:
        result = asyncio.run(replay(args.bootstrap, args.service, set(args.offset) if args.offset else None))
    for dl in result:
        print(json.dumps(asdict(dl), ensure_ascii=False))
    print(f"{len(result)} dead letter(s) {'listed' if args.command == 'list' else 'replayed'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
