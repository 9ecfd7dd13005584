"""Transactional outbox: events are written with the state change, and a relay publishes them.

``add`` runs inside the caller's transaction; the caller's edge commits. ``pg_notify`` inside the
same transaction wakes the relay at commit time, so latency does not depend on the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gridline_contracts.envelope import Envelope
from gridline_contracts.topics import topic_for

from . import metrics
from .outage import is_infrastructure_error

log = logging.getLogger(__name__)

# Errors Kafka will never accept on retry; anything else (timeouts, broker down) is retried.
_PERMANENT = (
    "MessageSizeTooLargeError",
    "RecordListTooLargeError",
    "InvalidTopicError",
    "TopicAuthorizationFailedError",
)


def channel(schema: str) -> str:
    return f"{schema}_outbox"


async def add(
    session: AsyncSession, table: Table, envelopes: Iterable[Envelope[Any]], *, topic: str | None = None
) -> int:
    """Queue events for publication in the caller's transaction; ``topic`` overrides the catalogue (tests)."""
    rows = [
        {
            "event_id": env.id,
            "topic": topic or topic_for(type(env.data)).name,
            "key": env.subject,
            "headers": [[k, v.decode()] for k, v in env.headers()],
            "payload": env.body(),
        }
        for env in envelopes
    ]
    if not rows:
        return 0
    await session.execute(insert(table), rows)
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": channel(table.schema or "public")})
    return len(rows)


class Relay:
    """Publishes outbox rows in id order with an idempotent producer, then deletes them.

    Crash between Kafka's ack and the delete → the rows are published again after restart with the
    same ``ce_id``; consumers' inboxes make that harmless. Only the holder of a per-schema advisory
    lock publishes, so several replicas never interleave one ticket's events.
    """

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        table: Table,
        producer: AIOKafkaProducer,
        libpq_url: str,
        batch_max: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.service = service
        self.engine = engine
        self.table = table
        self.producer = producer
        self.libpq_url = libpq_url
        self.batch_max = batch_max
        self.poll_interval_s = poll_interval_s
        self.schema = table.schema or "public"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_stats = 0.0

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.libpq_url)
                await self._lead(conn)
                backoff = 0.5
            except Exception as exc:
                # SQLAlchemy wraps driver errors in its own classes: classify by the cause chain,
                # or a database crash during publish_batch would end the relay for good.
                if not is_infrastructure_error(exc):
                    raise
                metrics.FAILED.labels(self.service, "infrastructure").inc()
                log.warning("relay lost its database connection: %s; retrying in %.1fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        key = f"relay:{self.schema}"
        while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
            if self._stopping.is_set():
                return
            await self._sleep(1.0)  # another replica leads; take over if it dies
        await conn.add_listener(channel(self.schema), lambda *_: self._wake.set())
        log.info("relay leading for schema %s", self.schema)
        backoff = 0.2
        while not self._stopping.is_set():
            if conn.is_closed():
                raise asyncpg.InterfaceError("relay connection closed")
            self._wake.clear()
            try:
                n = await self.publish_batch()
                backoff = 0.2
            except (TimeoutError, KafkaError) as exc:
                metrics.FAILED.labels(self.service, "publish").inc()
                log.warning("publishing failed: %r; retrying in %.1fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            await self._stats()
            if n < self.batch_max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)

    async def publish_batch(self) -> int:
        t = self.table
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.headers, t.c.payload, t.c.attempts)
                    .where(t.c.failed_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self.batch_max)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            futures = []
            for r in rows:
                headers = [(k, v.encode()) for k, v in r.headers]
                futures.append(await self.producer.send(r.topic, value=r.payload, key=r.key.encode(), headers=headers))
            results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout=60)
            done: list[int] = []
            for r, res in zip(rows, results, strict=True):
                if not isinstance(res, BaseException):
                    done.append(r.id)
                    metrics.PRODUCED.labels(self.service, r.topic).inc()
                elif type(res).__name__ in _PERMANENT:
                    log.error("outbox row %s rejected by Kafka for good: %r", r.id, res)
                    metrics.FAILED.labels(self.service, "publish").inc()
                    await conn.execute(
                        update(t)
                        .where(t.c.id == r.id)
                        .values(attempts=r.attempts + 1, last_error=repr(res)[:2000], failed_at=datetime.now(UTC))
                    )
                else:
                    raise res  # transient: roll back, nothing deleted, the whole batch goes again
            if done:
                await conn.execute(delete(t).where(t.c.id.in_(done)))
            return len(rows)

    async def _stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < 2.0:
            return
        self._last_stats = now
        t = self.table
        async with self.engine.connect() as conn:
            count, oldest = (
                await conn.execute(select(func.count(), func.min(t.c.created_at)).where(t.c.failed_at.is_(None)))
            ).one()
        metrics.OUTBOX_PENDING.labels(self.service).set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(max(age, 0.0))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
