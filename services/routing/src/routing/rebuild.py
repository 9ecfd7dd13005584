"""``python -m routing rebuild-tickets``: backfill routing's read model of tickets from intake's history.

Routing only knows the tickets whose ``ticket.received`` it consumed. Started against a topic that
already has history (routing deployed after intake, or its database restored from an old backup),
it would not know the open tickets that duplicates must be compared with, nor those a dispatcher
or a 退单 refers to. Replaying the topic through the live consumer is not the answer: it would route
every old ticket again and publish its dispatch twice. This command instead:

1. reads every partition of ``intake.tickets.v1`` from its earliest offset up to the end offsets it
   saw when it started (no consumer group: it commits nothing and disturbs no one);
2. folds each ticket's events with :func:`domain.project` (pure);
3. for each ticket routing does not know yet and that was already decided (dispatched, queued,
   merged, closed …), inserts its row and marks its events in the inbox of routing's consumer
   group, so the live consumer skips them even when it reads from the earliest offset (a new
   group) — nothing is routed twice; duplicate counts of parents are recomputed;
4. leaves alone tickets routing already knows (the live consumer keeps them current) and tickets
   with nothing after ``ticket.received`` (the live consumer routes them when it reaches them).

Idempotent: running it again changes nothing. Run it before routing's consumers start (like
``migrate``): a live consumer racing it on a never-seen ticket could route that ticket itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine, session_factory
from gridline_contracts.registry import Undecodable, decode
from gridline_contracts.topics import TICKETS
from gridline_messaging.inbox import claim_many

from . import domain, store
from .settings import RoutingSettings

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class RebuildReport:
    events: int = 0
    undecodable: int = 0
    tickets: int = 0
    inserted: int = 0
    already_known: int = 0
    undecided: int = 0  # only ticket.received: left to the live consumer
    without_received: int = 0  # history starts after ticket.received (retention): cannot be rebuilt
    by_status: Counter[str] = field(default_factory=Counter)


async def read_history(bootstrap: str, topic: str) -> list[tuple[Any, datetime]]:
    """Every decodable envelope of ``topic`` up to its current end, with the record time, in partition order."""
    # Subscribed without a group: the client tracks the topic's metadata and commits nothing.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[Any, datetime]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if end[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset < end[tp]:
                        out.append((rec, datetime.fromtimestamp(rec.timestamp / 1000, UTC)))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


def fold(
    records: list[tuple[Any, datetime]], report: RebuildReport
) -> dict[uuid.UUID, tuple[domain.Projected, list[uuid.UUID]]]:
    """Each ticket's projected row and the ids of the events it was built from."""
    states: dict[uuid.UUID, tuple[domain.Projected | None, list[uuid.UUID]]] = {}
    for rec, at in records:
        try:
            env = decode(rec.headers, rec.value)
        except Undecodable:
            report.undecodable += 1  # the live consumer dead-letters these; nothing to rebuild from
            continue
        if env is None:
            continue
        report.events += 1
        ticket_id = getattr(env.data, "ticket_id", None)
        if not isinstance(ticket_id, uuid.UUID):
            continue
        state, ids = states.get(ticket_id, (None, []))
        state = domain.project(state, env.data, tenant=env.tenant, at=at)
        ids.append(env.id)
        states[ticket_id] = (state, ids)
    out: dict[uuid.UUID, tuple[domain.Projected, list[uuid.UUID]]] = {}
    for ticket_id, (state, ids) in states.items():
        if state is None:
            report.without_received += 1
        else:
            out[ticket_id] = (state, ids)
    report.tickets = len(out)
    return out


async def write(
    sessions: async_sessionmaker[AsyncSession],
    projected: dict[uuid.UUID, tuple[domain.Projected, list[uuid.UUID]]],
    consumer_group: str,
    report: RebuildReport,
) -> None:
    decided = [(p, ids) for p, ids in projected.values() if p.decided]
    report.undecided = len(projected) - len(decided)
    touched_parents: set[uuid.UUID] = set()
    for start in range(0, len(decided), BATCH):
        chunk = decided[start : start + BATCH]
        async with sessions() as s, s.begin():
            for p, ids in chunk:
                if not await _insert(s, p):
                    report.already_known += 1
                    continue
                report.inserted += 1
                report.by_status[p.status] += 1
                await claim_many(s, store.inbox, consumer_group, ids)
                if p.parent_ticket_id is not None:
                    touched_parents.add(p.parent_ticket_id)
    if touched_parents:
        async with sessions() as s, s.begin():
            await _recount(s, sorted(touched_parents))


async def _insert(s: AsyncSession, p: domain.Projected) -> bool:
    t = p.ticket
    stmt = (
        pg_insert(store.ticket)
        .values(
            ticket_id=t.ticket_id,
            tenant=t.tenant,
            ticket_no=p.ticket_no,
            category_code=t.category_code,
            demand_type=t.demand_type,
            priority=t.priority,
            lon=t.location[0] if t.location else None,
            lat=t.location[1] if t.location else None,
            address=t.address,
            area_code=t.area_code,
            caller_hash=t.caller_hash,
            received_at=p.received_at,
            status=p.status,
            unit_code=p.unit_code,
            co_unit_codes=list(p.co_unit_codes),
            grid_code=p.grid_code,
            parent_ticket_id=p.parent_ticket_id,
            queued_at=p.queued_at,
            manual_reason_code="rebuilt" if p.status == "awaiting_manual" else None,
            manual_reason="读模型重建：转人工的原因见工单的派单记录" if p.status == "awaiting_manual" else None,
            updated_at=p.updated_at,
        )
        .on_conflict_do_nothing(index_elements=["ticket_id"])
        .returning(store.ticket.c.ticket_id)
    )
    return (await s.execute(stmt)).first() is not None


async def _recount(s: AsyncSession, parents: list[uuid.UUID]) -> None:
    """A parent's 并单 count is the number of tickets merged into it now."""
    child = store.ticket.alias("child")
    counts = (
        select(func.count())
        .where(child.c.parent_ticket_id == store.ticket.c.ticket_id, child.c.status == "merged")
        .scalar_subquery()
    )
    await s.execute(store.ticket.update().where(store.ticket.c.ticket_id.in_(parents)).values(duplicate_count=counts))


async def rebuild(
    sessions: async_sessionmaker[AsyncSession], bootstrap: str, *, topic: str = TICKETS.name, consumer_group: str
) -> RebuildReport:
    report = RebuildReport()
    records = await read_history(bootstrap, topic)
    await write(sessions, fold(records, report), consumer_group, report)
    log.info("read model rebuilt from %s: %s", topic, report)
    return report


def rebuild_command(settings: RoutingSettings, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m routing rebuild-tickets", description=__doc__.split("\n\n")[0])
    p.add_argument("--topic", default=TICKETS.name)
    p.add_argument("--group", default=settings.service_name, help="routing's consumer group (its inbox key)")
    args = p.parse_args(argv)

    async def run() -> int:
        engine = create_engine(settings.database_url, schema=store.SCHEMA)
        try:
            report = await rebuild(
                session_factory(engine), settings.kafka_bootstrap_servers, topic=args.topic, consumer_group=args.group
            )
        finally:
            await engine.dispose()
        print(
            f"events {report.events} (undecodable {report.undecodable}); tickets {report.tickets}: "
            f"inserted {report.inserted} {dict(report.by_status)}, already known {report.already_known}, "
            f"left to the consumer {report.undecided}, history without ticket.received {report.without_received}"
        )
        return 0

    return asyncio.run(run())
