"""A minimal service built only from the messaging library, for reliability tests.

Run as a process (``python harness.py consume|relay``) so tests can SIGKILL it at exact points:
``--crash-before-commit`` kills the consumer after its database commit and before its offset commit;
``--crash-after-ack`` kills the relay after Kafka acknowledged a batch and before the rows are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import create_engine, session_factory
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import ReporterRef, TicketReceivedV1
from gridline_messaging.consumer import Consumer
from gridline_messaging.outbox import Relay
from gridline_messaging.producer import make_producer
from gridline_messaging.tables import make_inbox_table, make_outbox_table


def tables(schema: str) -> tuple[MetaData, Table, Table, Table]:
    md = MetaData(schema=schema)
    outbox = make_outbox_table(md)
    inbox = make_inbox_table(md)
    # How many times each event's effect was applied: must end at exactly 1 for every event.
    effect = Table(
        "effect",
        md,
        Column("event_id", Uuid, primary_key=True),
        Column("ticket_no", Text, nullable=False),
        Column("applied", Integer, nullable=False),
    )
    return md, outbox, inbox, effect


def make_event(n: int, tenant: str = "330106") -> Envelope[Any]:
    now = datetime.now(UTC)
    tid = uuid.uuid4()
    data = TicketReceivedV1(
        ticket_id=tid,
        ticket_no=f"{tenant}-TEST-{n:06d}",
        channel="citizen",
        category_code="CRUNCHY-ARMCHAIR",
        description="测试",
        reported_at=now,
        received_at=now,
        reporter=ReporterRef(),
    )
    return Envelope(source="harness", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)


async def consume(args: argparse.Namespace) -> None:
    _, _, inbox, effect = tables(args.schema)
    engine = create_engine(args.db)
    producer = make_producer(args.kafka, "harness")
    await producer.start()

    async def apply(session: AsyncSession, env: Envelope[Any]) -> None:
        if args.fail_type and env.data.ticket_no.endswith(args.fail_type):
            raise ValueError("this ticket always fails")
        await session.execute(
            insert(effect)
            .values(event_id=env.id, ticket_no=env.data.ticket_no, applied=1)
            .on_conflict_do_update(index_elements=["event_id"], set_={"applied": effect.c.applied + 1})
        )

    consumer = Consumer(
        service=args.service,
        topics=[args.topic],
        handlers={TicketReceivedV1: apply},
        session_factory=session_factory(engine),
        inbox=inbox,
        producer=producer,
        bootstrap_servers=args.kafka,
        group_id=args.group,
        dead_letter_topic=args.dead_letter_topic or None,
        max_attempts=3,
        backoff_initial_s=0.05,
        batch_max=args.batch,
    )
    if args.crash_before_commit:
        original = consumer.commit_pending

        async def crash(only: Any) -> None:
            if consumer._pending:  # effects are committed in the database, offsets are not
                os.kill(os.getpid(), signal.SIGKILL)
            await original(only)

        consumer.commit_pending = crash  # type: ignore[method-assign]

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(consumer.stop()))
    await consumer.run()
    await producer.stop()
    await engine.dispose()


async def relay(args: argparse.Namespace) -> None:
    _, outbox, _, _ = tables(args.schema)
    engine = create_engine(args.db)
    producer = make_producer(args.kafka, "harness-relay")
    await producer.start()
    if args.crash_after_ack:
        real_send = producer.send
        count = 0

        async def send(*a: Any, **kw: Any) -> Any:
            nonlocal count
            fut = await real_send(*a, **kw)
            count += 1
            if count == args.crash_after_ack:
                # Runs as soon as Kafka acks, before the relay's gather returns and deletes the rows.
                fut.add_done_callback(lambda _f: os.kill(os.getpid(), signal.SIGKILL))
            return fut

        producer.send = send  # type: ignore[method-assign]
    r = Relay(
        service="harness",
        engine=engine,
        table=outbox,
        producer=producer,
        libpq_url=args.db.replace("+asyncpg", ""),
        batch_max=args.batch,
        poll_interval_s=0.2,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(r.stop()))
    await r.run()
    await producer.stop()
    await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["consume", "relay"])
    p.add_argument("--kafka", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--topic", default="")
    p.add_argument("--group", default="harness")
    p.add_argument("--service", default="harness")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--fail-type", default="")
    p.add_argument("--dead-letter-topic", default="")
    p.add_argument("--crash-before-commit", action="store_true")
    p.add_argument("--crash-after-ack", type=int, default=0)
    args = p.parse_args()
    args.db = args.db.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(consume(args) if args.mode == "consume" else relay(args))


if __name__ == "__main__":
    main()
