"""Routing on real PostgreSQL (a migrated database of its own) and real Kafka (its consumer, inbox and
dead letters on a topic of its own), with the synthetic city of ``python -m routing.synthcity`` as the
directory. What routing announces is read back from its outbox (the relay is tested by messaging)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers
from gridline_boot.staff_auth import StaffTokenVerifier
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import GeoPoint, ReporterRef, TicketReceivedV1
from gridline_messaging.consumer import Consumer
from gridline_messaging.producer import make_producer
from routing import store, synthcity
from routing.api import ROLES, build_router
from routing.app import build_routing, handler_table
from routing.handlers import Routing, import_directory
from routing.settings import RoutingSettings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def routing_db(stack: Any) -> Iterator[str]:
    base = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"routing_{uuid.uuid4().hex[:10]}"
    url = base.rsplit("/", 1)[0] + "/" + name

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka}
    r = subprocess.run(
        [sys.executable, "-m", "routing", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
async def engine(routing_db: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(routing_db.replace("postgresql://", "postgresql+asyncpg://", 1), schema=store.SCHEMA)
    try:
        yield e
    finally:
        await e.dispose()


@pytest.fixture(scope="module")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture(scope="module")
def city() -> synthcity.SynthCity:
    return synthcity.generate(2000, seed=7)


@pytest.fixture(scope="module")
def settings(routing_db: str, stack: Any) -> RoutingSettings:
    return RoutingSettings(
        database_url=routing_db,
        kafka_bootstrap_servers=stack.kafka,
        directory_refresh_s=0.1,
        duplicate_radius_m=100,
        duplicate_window_h=72,
    )


@pytest.fixture(scope="module")
async def routing(
    settings: RoutingSettings, sessions: async_sessionmaker[AsyncSession], city: synthcity.SynthCity
) -> Routing:
    async with sessions() as s, s.begin():
        version, report = await import_directory(
            s, tenant=city.tenant, grids=city.grids, bundle=city.bundle, imported_by="it"
        )
    assert version is not None, report.codes("error")
    return build_routing(settings)


TOKENS = StaffTokenVerifier(
    f"it1:{secrets.token_urlsafe(32)}", audiences=["gridline-routing", "gridline-intake"], roles=ROLES
)


def staff(sub: str, tenant: str, role: str = "dispatcher", audience: str = "gridline-intake") -> dict[str, str]:
    """Headers of a staff member, signed like intake's staff tokens."""
    return {"Authorization": f"Bearer {TOKENS.issue(sub=sub, tenant=tenant, role=role, audience=audience)}"}


class SignedIn(httpx.Auth):
    """Signs each request as a staff member of the path's tenant unless it carries its own token:
    the admin for the directory, a dispatcher for everything else (the auth rules have their own tests)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        m = re.match(r"^/v1/tenants/([^/]+)(/.*)?$", request.url.path)
        if "Authorization" not in request.headers and m:
            role = "admin" if (m.group(2) or "").endswith("/directory") else "dispatcher"
            request.headers.update(staff(f"it-{role}", m.group(1), role))
        yield request


class Ctx:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        topic: str,
        producer: Any,
        api: httpx.AsyncClient,
        anonymous: httpx.AsyncClient,
    ):
        self.sessions = sessions
        self.topic = topic
        self.producer = producer
        self.api = api
        self.anonymous = anonymous  # no token at all

    async def send(self, env: Envelope[Any]) -> None:
        await self.producer.send_and_wait(self.topic, env.body(), key=env.subject.encode(), headers=env.headers())

    async def events(self, key: uuid.UUID | str) -> list[dict[str, Any]]:
        """What routing queued for Kafka under this key, in publication order, with a ``type``."""
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(store.outbox.c.headers, store.outbox.c.payload)
                    .where(store.outbox.c.key == str(key))
                    .order_by(store.outbox.c.id)
                )
            ).all()
        out = []
        for r in rows:
            body = json.loads(r.payload)
            body["type"] = dict(r.headers)["ce_type"].removeprefix("cn.gridline.").rsplit(".v", 1)[0]
            out.append(body)
        return out

    async def until_events(self, key: uuid.UUID | str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await until(
            f"{count} events for {key}", lambda: self._at_least(key, count), timeout
        )
        return found

    async def _at_least(self, key: uuid.UUID | str, count: int) -> list[dict[str, Any]] | None:
        found = await self.events(key)
        return found if len(found) >= count else None


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def ctx(stack: Any, sessions: async_sessionmaker[AsyncSession], routing: Routing) -> AsyncIterator[Ctx]:
    topic = f"it.routing.tickets.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(stack.kafka, "it-routing")
    await producer.start()
    consumer = Consumer(
        service="routing",
        topics=[topic],
        handlers=handler_table(routing),
        session_factory=sessions,
        inbox=store.inbox,
        producer=producer,
        bootstrap_servers=stack.kafka,
        group_id=f"it-routing-{uuid.uuid4().hex[:8]}",
        max_attempts=2,
        backoff_initial_s=0.05,
        dead_letter_topic=f"{topic}.dlq",
    )
    task = asyncio.create_task(consumer.run())
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router())
    app.state.sessions = sessions
    app.state.routing = routing
    app.state.staff_tokens = TOKENS
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://routing", auth=SignedIn())
    anonymous = httpx.AsyncClient(transport=transport, base_url="http://routing")
    try:
        yield Ctx(sessions, topic, producer, client, anonymous)
    finally:
        await client.aclose()
        await anonymous.aclose()
        await consumer.stop()
        await asyncio.wait_for(task, 30)
        await producer.stop()


def received(
    tenant: str,
    category: str,
    *,
    point: tuple[float, float] | None = None,
    address: str | None = None,
    area_code: str | None = None,
    n: int = 0,
    caller_hash: str | None = None,
) -> Envelope[Any]:
    now = datetime.now(UTC)
    tid = uuid.uuid4()
    data = TicketReceivedV1(
        ticket_id=tid,
        ticket_no=f"{tenant}-IT-{tid.hex[:8]}",
        channel="hotline",
        category_code=category,
        description="路边有暴露垃圾，气味很大",
        location=GeoPoint(lon=point[0], lat=point[1]) if point else None,
        address=address,
        area_code=area_code,
        reported_at=now,
        received_at=now,
        reporter=ReporterRef(
            contact_token="sealed-token-not-comparable", masked_phone="138****0000", caller_hash=caller_hash
        ),
    )
    return Envelope[Any](source="intake", tenant=tenant, subject=str(tid), correlation_id=str(tid), data=data)


def follow_up(first: Envelope[Any], data: EventData) -> Envelope[Any]:
    return first.caused(data, source="intake")
