"""The messaging side of one service process: producer, outbox relay and consumer, started by role.

A service's composition root builds one of these in its FastAPI lifespan; readiness checks cover the
database, Kafka and the background loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gridline_boot.db import ping
from gridline_boot.http import ReadinessCheck
from gridline_boot.runner import BackgroundTasks
from gridline_boot.settings import ServiceSettings
from gridline_contracts.envelope import EventData

from .consumer import Consumer, Handler
from .outbox import Relay
from .producer import make_producer

log = logging.getLogger(__name__)


class MessagingRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        inbox: Table | None,
        topics: Sequence[str] = (),
        handlers: Mapping[type[EventData], Handler] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.inbox = inbox
        self.topics = topics
        self.handlers = handlers or {}
        self.producer: AIOKafkaProducer = make_producer(settings.kafka_bootstrap_servers, settings.service_name)
        self.tasks = BackgroundTasks()
        self.relay: Relay | None = None
        self.consumer: Consumer | None = None

    async def start(self) -> None:
        s = self.settings
        # The broker may still be starting (compose, Kubernetes): wait rather than crash-loop.
        for attempt in range(60):
            try:
                await self.producer.start()
                break
            except Exception as exc:
                if attempt == 59:
                    raise
                log.warning("Kafka not reachable yet (%r); retrying", exc)
                await asyncio.sleep(1)
        if "relay" in s.roles:
            self.relay = Relay(
                service=s.service_name,
                engine=self.engine,
                table=self.outbox,
                producer=self.producer,
                libpq_url=s.libpq_url,
                batch_max=s.relay_batch_max,
                poll_interval_s=s.relay_poll_interval_s,
            )
            self.tasks.start("relay", self.relay.run(), self.relay.stop)
        if "consumer" in s.roles and self.topics and self.handlers and self.inbox is not None:
            self.consumer = Consumer(
                service=s.service_name,
                topics=self.topics,
                handlers=self.handlers,
                session_factory=self.sessions,
                inbox=self.inbox,
                producer=self.producer,
                bootstrap_servers=s.kafka_bootstrap_servers,
                max_attempts=s.consumer_max_attempts,
                backoff_initial_s=s.consumer_backoff_initial_s,
                backoff_max_s=s.consumer_backoff_max_s,
                batch_max=s.consumer_batch_max,
            )
            self.tasks.start("consumer", self.consumer.run(), self.consumer.stop)

    async def stop(self) -> None:
        await self.tasks.stop(self.settings.shutdown_grace_s)
        await self.producer.stop()

    async def _kafka(self) -> None:
        await self.producer.client.fetch_all_metadata()

    async def _db(self) -> None:
        await ping(self.engine)

    def checks(self) -> list[ReadinessCheck]:
        return [("database", self._db), ("kafka", self._kafka), ("loops", self.tasks.check)]
