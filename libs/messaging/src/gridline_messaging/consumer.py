"""Reliable consumption: at-least-once from Kafka, exactly-once in effect through the inbox.

For each partition batch: try to apply the whole batch in one database transaction (fast path). If
any handler raises, roll back and apply the batch one message at a time (slow path), where a message
whose handler keeps failing after bounded retries goes to the dead-letter topic. Offsets are
committed only after the database commit, so a crash between the two replays messages that the
inbox then skips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.logging import bind, clear
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.registry import Undecodable, decode
from gridline_contracts.topics import dead_letter

from . import metrics
from .inbox import claim, claim_many
from .outage import is_infrastructure_error

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope[Any]], Awaitable[None]]
"""Applies one event inside the given transaction (state change + outbox rows). Never commits."""


class _Stopping(Exception):
    pass


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Consumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.commit_pending(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        topics: Sequence[str],
        handlers: Mapping[type[EventData], Handler],
        session_factory: async_sessionmaker[AsyncSession],
        inbox: Table,
        producer: AIOKafkaProducer,
        bootstrap_servers: str,
        group_id: str | None = None,
        max_attempts: int = 5,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        batch_max: int = 200,
        dead_letter_topic: str | None = None,
    ) -> None:
        self.service = service
        self.topics = list(topics)
        self.handlers = dict(handlers)
        self.session_factory = session_factory
        self.inbox = inbox
        self.producer = producer
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id or service
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.batch_max = batch_max
        self.dead_letter_topic = dead_letter_topic or dead_letter(service).name
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}  # processed but not yet committed
        self.ready = asyncio.Event()
        self._lag_at = 0.0

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_max,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            # A handler stuck on a dead database may block a batch for long: keep the membership.
            max_poll_interval_ms=600_000,
            fetch_max_wait_ms=100,
        )
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=_Listener(self))
        await consumer.start()
        self.ready.set()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_max)
                for tp, records in batches.items():
                    if self._stopping.is_set():
                        break
                    try:
                        await self._apply_batch(tp, records)
                    except _Stopping:
                        break
                    await self.commit_pending({tp})
                    clear()
                await self._record_lag(consumer)
        finally:
            await self.commit_pending(None)
            await consumer.stop()
            log.info("consumer %s stopped", self.group_id)

    async def commit_pending(self, only: set[TopicPartition] | None) -> None:
        consumer = self._consumer
        offsets = {tp: off for tp, off in self._pending.items() if only is None or tp in only}
        if consumer is None or not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Lost the partition in a rebalance: the new owner replays, the inbox skips duplicates.
            log.warning("offset commit failed (%r); messages will be replayed and deduplicated", exc)
        for tp in offsets:
            if self._pending.get(tp) == offsets[tp]:
                del self._pending[tp]

    # -- applying -----------------------------------------------------------------------------

    async def _apply_batch(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        decoded: list[tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]] = []
        for rec in records:
            try:
                env = decode(rec.headers, rec.value, accept=self.handlers.keys())
            except Undecodable as exc:
                await self._dead_letter(rec, exc.code, exc.message)
                continue
            if env is None:
                metrics.CONSUMED.labels(self.service, rec.topic, "other", "ignored").inc()
            else:
                decoded.append((rec, env))
        if decoded:
            started = time.perf_counter()
            try:
                await self._apply_all(decoded)
            except Exception as exc:
                log.warning("batch of %d failed (%r); applying one by one", len(decoded), exc)
                for rec, env in decoded:
                    await self._apply_one(rec, env)
            else:
                per = (time.perf_counter() - started) / len(decoded)
                for _rec, env in decoded:
                    metrics.HANDLER_SECONDS.labels(self.service, env.type).observe(per)
        self._pending[tp] = records[-1].offset + 1

    async def _apply_all(self, items: list[tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]]) -> None:
        outcomes: list[tuple[ConsumerRecord[bytes, bytes], Envelope[Any], str]] = []
        async with self.session_factory() as session, session.begin():
            # One round trip claims the whole batch; a copy seen twice in the batch is applied once.
            fresh = await claim_many(session, self.inbox, self.group_id, [env.id for _, env in items])
            for rec, env in items:
                if env.id not in fresh:
                    outcomes.append((rec, env, "duplicate"))
                    continue
                fresh.discard(env.id)
                bind(ticket_id=env.subject, correlation_id=env.correlation_id, tenant=env.tenant)
                await self.handlers[type(env.data)](session, env)
                outcomes.append((rec, env, "processed"))
        for rec, env, outcome in outcomes:
            self._count(rec, env, outcome)

    async def _apply_in(self, session: AsyncSession, env: Envelope[Any]) -> str:
        bind(ticket_id=env.subject, correlation_id=env.correlation_id, tenant=env.tenant)
        if not await claim(session, self.inbox, self.group_id, env.id):
            return "duplicate"
        await self.handlers[type(env.data)](session, env)
        return "processed"

    def _count(self, rec: ConsumerRecord[bytes, bytes], env: Envelope[Any], outcome: str) -> None:
        metrics.CONSUMED.labels(self.service, rec.topic, env.type, outcome).inc()
        if outcome == "processed":
            age = (datetime.now(UTC) - env.time).total_seconds()
            metrics.EVENT_LATENCY.labels(self.service, env.type).observe(max(age, 0.0))

    async def _apply_one(self, rec: ConsumerRecord[bytes, bytes], env: Envelope[Any]) -> None:
        attempt = 0
        infra_backoff = self.backoff_initial_s
        while True:
            started = time.perf_counter()
            try:
                async with self.session_factory() as session, session.begin():
                    outcome = await self._apply_in(session, env)
                metrics.HANDLER_SECONDS.labels(self.service, env.type).observe(time.perf_counter() - started)
                self._count(rec, env, outcome)
                return
            except Exception as exc:
                if is_infrastructure_error(exc):
                    metrics.FAILED.labels(self.service, "infrastructure").inc()
                    log.warning("infrastructure error on %s (%r); retrying in %.1fs", env.id, exc, infra_backoff)
                    await self._sleep_or_stop(infra_backoff)
                    infra_backoff = min(infra_backoff * 2, self.backoff_max_s)
                    continue
                attempt += 1
                metrics.FAILED.labels(self.service, "handler").inc()
                if attempt >= self.max_attempts:
                    log.error("handler failed %d times on %s; dead-lettering", attempt, env.id, exc_info=exc)
                    await self._dead_letter(rec, "handler_failed", f"{type(exc).__name__}: {exc}")
                    return
                delay = min(self.backoff_initial_s * 2 ** (attempt - 1), self.backoff_max_s)
                log.warning("handler failed on %s (attempt %d/%d): %r", env.id, attempt, self.max_attempts, exc)
                await self._sleep_or_stop(delay)

    async def _sleep_or_stop(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise _Stopping()

    async def _dead_letter(self, rec: ConsumerRecord[bytes, bytes], code: str, message: str) -> None:
        headers = [(k, v) for k, v in (rec.headers or ()) if not k.startswith("dlq_")]
        headers += [
            ("dlq_topic", rec.topic.encode()),
            ("dlq_partition", str(rec.partition).encode()),
            ("dlq_offset", str(rec.offset).encode()),
            ("dlq_consumer", self.group_id.encode()),
            ("dlq_reason", code.encode()),
            ("dlq_error", message[:4000].encode("utf-8", "replace")),
            ("dlq_at", datetime.now(UTC).isoformat().encode()),
        ]
        backoff = self.backoff_initial_s
        while True:
            try:
                await self.producer.send_and_wait(self.dead_letter_topic, value=rec.value, key=rec.key, headers=headers)
                break
            except KafkaError as exc:
                log.warning("dead-letter publish failed (%r); retrying", exc)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
        metrics.DEAD_LETTERED.labels(self.service, rec.topic, code).inc()
        metrics.CONSUMED.labels(self.service, rec.topic, "unknown", "dead_lettered").inc()
        log.error("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, code)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < 1.0:
            return
        self._lag_at = now
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = await asyncio.wait_for(consumer.position(tp), timeout=1)
            except Exception:
                continue
            metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(high - pos, 0))
