"""12345 sync-back: push status changes and results of hotline orders to the platform that sent them.

* **Queue (consumer side).** ``ticket.received`` with an ``origin`` from a hotline integration keeps
  ``ticket → (tenant, integration, external order id)`` and queues the first push (已受理); every
  later lifecycle event of that ticket (``ticket.dispatched`` and every transition) queues one
  push, in the consumer's transaction (same as the inbox), keyed ``(event id, order)`` so a
  redelivered event queues nothing.
* **Order.** Pushes of one order carry an increasing ``seq``; only the oldest unacknowledged push of
  an order may be claimed, so a later status never reaches the platform before an earlier one is
  acknowledged. Orders are independent: a platform that is down delays only its own orders.
* **Exactly once in effect.** Each push has one id, sent as ``Idempotency-Key`` on every try; a try
  whose answer was lost (timeout, process killed) is retried with the same key, and the platform
  dedupes on it. A claim leases the row past the call timeout instead of marking it in flight, so a
  killed process simply lets the lease run out.
* **Retries** until acknowledged (2xx with ``{"code": 0}``), with full-jitter exponential backoff
  capped at ``syncback_backoff_cap_s``; never given up, because a dropped status corrupts the
  platform's record. A stuck platform shows as lag (``notify_syncback_oldest_pending_age_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError
from gridline_contracts import intake as ev
from gridline_contracts.envelope import Envelope, EventData
from gridline_messaging.consumer import Handler
from gridline_pii import Keyring

from . import metrics
from . import syncback_domain as sd
from . import syncback_store as sbs

log = logging.getLogger(__name__)

SECRET_PURPOSE = "syncback-secret"

# Every lifecycle transition intake publishes after ticket.received.
TRANSITIONS: tuple[type[ev.Transition], ...] = (
    ev.TicketUpdatedV1,
    ev.TicketSignedV1,
    ev.TicketReturnRequestedV1,
    ev.TicketReturnResolvedV1,
    ev.TicketExtensionRequestedV1,
    ev.TicketExtensionReviewedV1,
    ev.TicketRepliedV1,
    ev.TicketReplyReviewedV1,
    ev.TicketCallbackRecordedV1,
    ev.TicketReopenedV1,
    ev.TicketClosedV1,
    ev.TicketArchivedV1,
    ev.TicketRejectedV1,
    ev.TicketMergedV1,
)


# -- consumer side --------------------------------------------------------------------------------


async def on_ticket_received(session: AsyncSession, env: Envelope[Any]) -> None:
    """Remember a hotline order's origin and queue its first push (已受理, with our ticket number)."""
    data: ev.TicketReceivedV1 = env.data
    if data.channel != "hotline" or data.origin is None:
        return
    order = sd.Order(env.tenant, data.origin.integration, data.origin.external_id, data.ticket_id, data.ticket_no)
    await sbs.add_order(
        session,
        ticket_id=order.ticket_id,
        tenant=order.tenant,
        integration=order.integration,
        external_id=order.external_id,
        ticket_no=order.ticket_no,
    )
    await _enqueue(session, env, order, sd.received_payload(data.TYPE, data.received_at, order), data.received_at)


async def on_transition(session: AsyncSession, env: Envelope[Any]) -> None:
    data: ev.Transition = env.data
    row = await sbs.get_order(session, data.ticket_id)
    if row is None:  # not a hotline order
        return
    order = sd.Order(row.tenant, row.integration, row.external_id, row.ticket_id, row.ticket_no)
    await _enqueue(session, env, order, sd.transition_payload(env.type, data, order), data.at)


async def _enqueue(
    session: AsyncSession, env: Envelope[Any], order: sd.Order, payload: dict[str, Any], at: datetime
) -> None:
    if await sbs.enqueue(
        session,
        id=uuid.uuid4(),
        dedupe_key=sd.item_key(env.id, order),
        event_id=env.id,
        tenant=order.tenant,
        integration=order.integration,
        external_id=order.external_id,
        ticket_id=order.ticket_id,
        event_type=env.type,
        payload=payload,
        occurred_at=at,
    ):
        metrics.SYNCBACK_QUEUED.labels(order.integration).inc()


async def on_dispatched(session: AsyncSession, env: Envelope[Any]) -> None:
    data: ev.TicketDispatchedV1 = env.data
    row = await sbs.get_order(session, data.ticket_id)
    if row is None:
        return
    order = sd.Order(row.tenant, row.integration, row.external_id, row.ticket_id, row.ticket_no)
    await _enqueue(session, env, order, sd.dispatched_payload(env.type, data, order), data.dispatched_at)


def transition_handlers() -> dict[type[EventData], Handler]:
    """Events after ticket.received that change what the platform shows.

    notify has no other handler for these; one that gets one must call these too (a dict merge
    keeps only one handler per event type).
    """
    table: dict[type[EventData], Handler] = dict.fromkeys(TRANSITIONS, on_transition)
    table[ev.TicketDispatchedV1] = on_dispatched
    return table


# -- configuration --------------------------------------------------------------------------------


class EndpointConfig(BaseModel):
    """A platform's callback endpoint, from settings (``SYNCBACK_ENDPOINTS`` JSON list) or the admin API."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    tenant: str = Field(pattern=r"^\d{6,12}$")
    integration: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=8, max_length=500)
    api_key: str = Field(min_length=1, max_length=64, description="the id the platform knows Gridline by")
    secret: SecretStr

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError("回调地址须为 http(s) URL")
        return v

    @field_validator("secret")
    @classmethod
    def _strong(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("签名密钥至少 16 个字符")
        return v


async def save_endpoint(session: AsyncSession, pii: Keyring, e: EndpointConfig) -> None:
    await sbs.upsert_endpoint(
        session,
        tenant=e.tenant,
        integration=e.integration,
        url=e.url,
        api_key=e.api_key,
        secret_sealed=pii.seal(e.secret.get_secret_value(), SECRET_PURPOSE),
    )


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    url: str = Field(min_length=8, max_length=500)
    api_key: str = Field(min_length=1, max_length=64)
    secret: SecretStr


class EndpointOut(BaseModel):
    tenant: str
    integration: str
    url: str
    api_key: str
    updated_at: datetime


class PushOut(BaseModel):
    id: uuid.UUID
    seq: int
    integration: str
    external_id: str
    event_type: str
    status: str | None
    state: str
    attempts: int
    last_code: str | None
    next_attempt_at: datetime | None
    acked_at: datetime | None


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def _pii(request: Request) -> Keyring:
    pii: Keyring = request.app.state.pii
    return pii


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
Pii = Annotated[Keyring, Depends(_pii)]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["syncback"])

    @router.put("/syncback/{integration}", response_model=EndpointOut)
    async def put_endpoint(tenant: str, integration: str, body: EndpointIn, sessions: Sessions, pii: Pii) -> Any:
        """Set where this platform takes status callbacks; the secret is stored sealed and never shown."""
        try:
            cfg = EndpointConfig(tenant=tenant, integration=integration, **body.model_dump())
        except ValueError as exc:
            raise ApiError(
                422, "invalid_syncback_endpoint", "回调配置无效：地址须为 http(s)，密钥至少 16 个字符"
            ) from exc
        async with sessions() as s, s.begin():
            await save_endpoint(s, pii, cfg)
        async with sessions() as s:
            rows = [r for r in await sbs.endpoints(s, tenant) if r.integration == integration]
        return rows[0]._asdict()

    @router.get("/syncback", response_model=list[EndpointOut])
    async def list_endpoints(tenant: str, sessions: Sessions) -> Any:
        async with sessions() as s:
            return [r._asdict() for r in await sbs.endpoints(s, tenant)]

    @router.get("/tickets/{ticket_id}/syncback", response_model=list[PushOut])
    async def ticket_pushes(tenant: str, ticket_id: uuid.UUID, sessions: Sessions) -> Any:
        async with sessions() as s:
            rows = await sbs.for_ticket(s, tenant, ticket_id)
        return [{**r._asdict(), "status": r.payload.get("status"), "next_attempt_at": r.next_attempt_at} for r in rows]

    return router


# -- the worker -----------------------------------------------------------------------------------


class SyncbackWorker:
    """Claims due order heads and pushes each as its own task, so a slow platform holds up only itself."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        pii: Keyring,
        timeout_s: float,
        concurrency: int,
        backoff_base_s: float,
        backoff_cap_s: float,
        poll_interval_s: float,
        configured: Sequence[EndpointConfig] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.http = http
        self.pii = pii
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.poll_interval_s = poll_interval_s
        self.configured = list(configured)
        self.lease_s = 2 * timeout_s + 5
        self.rng = rng or random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_gauges = 0.0

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        if self.configured:
            async with self.sessions() as s, s.begin():
                for cfg in self.configured:
                    await save_endpoint(s, self.pii, cfg)
        try:
            while not self._stopping.is_set():
                try:
                    started = await self.run_once()
                except Exception:
                    log.exception("sync-back iteration failed")
                    started = 0
                if started == 0 or len(self._inflight) >= self.concurrency:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
        finally:
            # Let calls in flight finish and record (bounded by the call timeout).
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self.timeout_s + 2)

    async def run_once(self) -> int:
        now = datetime.now(UTC)
        if time.monotonic() - self._last_gauges > 5:
            self._last_gauges = time.monotonic()
            await self._gauges(now)
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return 0
        async with self.sessions() as s, s.begin():
            rows = await sbs.claim(s, now, room, self.lease_s)
        for row in rows:
            task = asyncio.create_task(self._push(row))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # room for more, and the order's next push may be due now
        if not task.cancelled() and task.exception() is not None:
            log.error("sync-back push failed unexpectedly", exc_info=task.exception())

    async def _gauges(self, now: datetime) -> None:
        async with self.sessions() as s:
            pending, oldest = await sbs.backlog(s)
        metrics.SYNCBACK_PENDING.set(pending)
        metrics.SYNCBACK_OLDEST_AGE.set((now - oldest).total_seconds() if oldest else 0)

    async def _push(self, row: Any) -> None:
        body = sd.request_body(row.payload, sequence=row.seq, event_id=row.event_id)
        secret = self.pii.open(row.secret_sealed, SECRET_PURPOSE)
        headers = sd.signed_headers(
            api_key=row.api_key,
            secret=secret,
            idempotency_key=str(row.id),
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_hex(16),
        )
        started = time.perf_counter()
        try:
            r = await self.http.post(row.url, content=body, headers=headers, timeout=self.timeout_s)
            answer = sd.classify(r.status_code, r.content)
        except httpx.TimeoutException:
            answer = sd.Answer(False, "timeout", "no answer within the timeout")
        except httpx.HTTPError as exc:
            answer = sd.Answer(False, "connect_error", type(exc).__name__)
        metrics.SYNCBACK_SECONDS.labels(row.integration).observe(time.perf_counter() - started)
        now = datetime.now(UTC)
        async with self.sessions() as s, s.begin():
            if answer.acked:
                await sbs.acked(s, row.id, now, answer.code)
            else:
                delay = sd.backoff_s(row.attempts + 1, self.backoff_base_s, self.backoff_cap_s, self.rng.random())
                await sbs.retry_later(s, row.id, now + timedelta(seconds=delay), answer.code, answer.message)
        if answer.acked:
            metrics.SYNCBACK_SENT.labels(row.integration).inc()
            metrics.SYNCBACK_LAG.labels(row.integration).observe((now - row.occurred_at).total_seconds())
            log.info("sync-back %s (%s, seq %d) acknowledged", row.id, row.event_type, row.seq)
        else:
            metrics.SYNCBACK_FAILURES.labels(row.integration, answer.code).inc()
            metrics.SYNCBACK_RETRIES.labels(row.integration).inc()
            log.warning(
                "sync-back %s (%s, seq %d) try %d not acknowledged: %s; retrying",
                row.id,
                row.event_type,
                row.seq,
                row.attempts + 1,
                answer.code,
            )
