"""The delivery loop: claim due notifications, call the provider outside any transaction, record the result.

Exactly-once effect, in three steps per batch:

1. claim (one transaction): due rows become ``sending`` and get an ``attempt`` row whose id is the
   OutId/SessionContext the provider echoes;
2. call the providers concurrently, outside any transaction — a transaction that could roll back
   after the SMS went out would forget a real send;
3. record (one transaction): every attempt's outcome, the notifications' next state and the
   ``notification.*`` events, in batch.

A send that may have reached the provider (read timeout, connection cut after the request, process
killed mid-call) is ``ambiguous``: it is never resent until the provider's own records (Aliyun
``QuerySendDetails``, Tencent ``PullSmsSendStatusByPhoneNumber``) say it was not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_contracts.envelope import Envelope
from gridline_messaging import outbox
from gridline_messaging.outage import is_infrastructure_error
from gridline_pii import Keyring

from . import channels, domain, metrics, receipts, store
from .channels import ChannelSender
from .providers.base import Lookup, SendResult, SmsMessage, SmsProvider
from .settings import TemplateRef

log = logging.getLogger(__name__)

PHONE_PURPOSE = "recipient-phone"


@dataclass(frozen=True)
class Route:
    """One SMS provider account: the client, its approved signature and its template codes."""

    provider: SmsProvider
    sign_name: str
    templates: dict[str, TemplateRef]

    @property
    def name(self) -> str:
        return self.provider.name


def tenant_limits(row: Any | None, default: domain.TenantLimits) -> domain.TenantLimits:
    """A tenant's stored limits, or the service defaults when it has none."""
    if row is None:
        return default
    return domain.TenantLimits(
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        per_recipient_hour=row.per_recipient_hour,
        per_recipient_day=row.per_recipient_day,
        tz=default.tz,
    )


def ordered_params(ref: TemplateRef, params: dict[str, str]) -> dict[str, str]:
    """Put our variables in the template's declared order (JSONB does not keep key order)."""
    if not ref.params:
        return dict(params)
    return {k: params[k] for k in ref.params if k in params} | {k: v for k, v in params.items() if k not in ref.params}


class Sender:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        routes: Sequence[Route],
        pii: Keyring,
        policy: domain.RetryPolicy,
        batch_max: int,
        call_timeout_s: float,
        poll_interval_s: float = 0.2,
        interrupted_after_s: float | None = None,
        default_limits: domain.TenantLimits | None = None,
        receipt_expiry_s: float = 72 * 3600,
        pull_tencent_receipts: bool = False,
        channels: Mapping[str, ChannelSender] | None = None,
        rng: random.Random | None = None,
        pipelines: int = 1,
    ) -> None:
        if not routes:
            raise ValueError("at least one SMS provider is required")
        self.sessions = sessions
        self.routes = list(routes)
        self.by_name = {r.name: r for r in self.routes}
        self.pii = pii
        self.policy = policy
        self.batch_max = batch_max
        self.call_timeout_s = call_timeout_s
        self.poll_interval_s = poll_interval_s
        # A live sender finishes a call within its timeout; a row 'sending' much longer is orphaned.
        self.interrupted_after_s = interrupted_after_s or call_timeout_s * 4 + 5
        self.rng = rng or random.Random()
        self.default_limits = default_limits or domain.TenantLimits()
        self.receipt_expiry_s = receipt_expiry_s
        self.pull_tencent_receipts = pull_tencent_receipts
        self.channels = dict(channels or {})  # WeChat, WeCom: one provider each
        self._stopping = asyncio.Event()
        self._last_sweep = 0.0
        # Batches in flight at once: while one waits on the providers, the next is claimed and the
        # previous recorded. Claims are serialised so per-recipient limits count every claim before.
        self.pipelines = max(1, pipelines)
        self._claim_lock = asyncio.Lock()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._lane(i) for i in range(self.pipelines)))

    async def _lane(self, lane: int) -> None:
        """Lane 0 also sweeps and settles; the others only send."""
        while not self._stopping.is_set():
            try:
                n = await (self.run_once() if lane == 0 else self.send_due(datetime.now(UTC)))
            except Exception:
                log.exception("sender iteration failed")
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_interval_s)

    async def run_once(self) -> int:
        now = datetime.now(UTC)
        if time.monotonic() - self._last_sweep > min(5.0, self.interrupted_after_s / 2):
            self._last_sweep = time.monotonic()
            await self.sweep(now)
        settled = await self.settle_due(now)
        return settled + await self.send_due(now)

    # -- sending ------------------------------------------------------------------------------

    async def send_due(self, now: datetime) -> int:
        async with self._claim_lock, self.sessions() as s, s.begin():
            rows = await self._claim(s, now)
            own = await store.templates_for(s, sorted({r.tenant for r in rows})) if rows else {}
        if not rows:
            return 0
        results = await asyncio.gather(*(self._call(r, own) for r in rows))
        await self._record(list(zip(rows, results, strict=True)))
        return len(rows)

    async def _claim(self, s: AsyncSession, now: datetime) -> list[Any]:
        """Lock due rows, defer those over their recipient's limits, claim the rest (one transaction)."""
        due = await store.lock_due(s, now, self.batch_max)
        if not due:
            return []
        hashes = sorted({r.recipient_hash for r in due if r.recipient_hash})
        recent = await store.recent_sends(s, hashes, now)
        overrides = await store.limits_for(s, sorted({r.tenant for r in due}))
        counts: dict[str, domain.RecentSends] = {}
        deferred: dict[Any, datetime] = {}
        go: list[Any] = []
        for r in due:
            if not r.recipient_hash:
                go.append(r.id)
                continue
            seen = counts.get(r.recipient_hash)
            if seen is None:
                row = recent.get(r.recipient_hash)
                seen = (
                    domain.RecentSends(row.hour, row.oldest_in_hour, row.day, row.oldest_in_day)
                    if row
                    else domain.RecentSends()
                )
            until = domain.rate_deferral(now, seen, self.limits(overrides.get(r.tenant)))
            if until is not None:
                deferred[r.id] = until
                continue
            go.append(r.id)
            # Later rows of this batch count the ones claimed before them.
            counts[r.recipient_hash] = domain.RecentSends(
                seen.hour + 1, seen.oldest_in_hour or now, seen.day + 1, seen.oldest_in_day or now
            )
        if deferred:
            await store.defer(s, deferred)
            metrics.DEFERRALS.labels("rate_limit").inc(len(deferred))
            log.info("%d notification(s) deferred by per-recipient rate limits", len(deferred))
        return await store.claim(s, go, now, [r.name for r in self.routes])

    def _route(self, row: Any) -> Route:
        index: int = min(row.provider_index, len(self.routes) - 1)
        return self.routes[index]

    async def _call(self, row: Any, own: dict[tuple[str, str, str], Any]) -> tuple[SendResult, float]:
        if row.channel != "sms":
            return await self._call_channel(row)
        route = self._route(row)
        tenant_ref = own.get((row.tenant, route.name, row.template))
        ref = (
            TemplateRef(code=tenant_ref.code, params=list(tenant_ref.variables))
            if tenant_ref is not None
            else route.templates.get(row.template)
        )
        started = time.perf_counter()
        if ref is None:  # another provider may have this template approved
            result = SendResult(route.name, "rejected", None, "no_template", "模板未配置", failover=True)
        elif row.address_sealed is None:
            result = SendResult(route.name, "rejected", None, row.last_code or "no_address", "无接收号码")
        else:
            msg = SmsMessage(
                phone=self.pii.open(row.address_sealed, PHONE_PURPOSE),
                sign_name=route.sign_name,
                template_code=ref.code,
                template_params=ordered_params(ref, dict(row.params)),
                out_id=str(row.attempt_id),
            )
            result = await route.provider.send(msg)
        elapsed = time.perf_counter() - started
        metrics.SENDS.labels("sms", result.provider, result.outcome).inc()
        metrics.SEND_SECONDS.labels("sms", result.provider).observe(elapsed)
        return result, elapsed

    async def _record(self, items: list[tuple[Any, tuple[SendResult, float]]]) -> None:
        now = datetime.now(UTC)
        notes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        events: list[list[Envelope[Any]]] = []
        for row, (result, elapsed) in items:
            a = domain.Attempted(
                outcome=result.outcome,
                provider=result.provider,
                code=result.code,
                message=result.message,
                provider_message_id=result.provider_message_id,
                retry_after_s=result.retry_after_s,
                failover=result.failover,
            )
            nxt = domain.after_attempt(self._progress(row), a, self.policy, now, self.rng.random())
            attempts.append(
                {
                    "b_id": row.attempt_id,
                    "finished_at": now,
                    "outcome": result.outcome,
                    "code": result.code,
                    "message": result.message[:500],
                    "provider_message_id": result.provider_message_id,
                    "latency_ms": round(elapsed * 1000),
                }
            )
            notes.append(self._next_values(row, a, nxt, now))
            events.append(self._envelopes(row, nxt))
            self._count(row, a, nxt)
        await self._commit_outcomes(notes, attempts, events)

    async def _commit_outcomes(
        self, notes: list[dict[str, Any]], attempts: list[dict[str, Any]], events: list[list[Envelope[Any]]]
    ) -> None:
        """Write the providers' answers, retrying through a database outage.

        The messages have gone out: if this write were dropped, the rows would stay ``sending``
        and later need settling from provider records, so the known outcome is kept in memory and
        written once the database is back. Only attempts still ``sending`` are written, so a
        commit whose reply was lost (or a replica's sweep that got there first) is not applied twice.
        """
        backoff = 0.2
        while True:
            try:
                async with self.sessions() as s, s.begin():
                    open_ = await store.unfinished_attempts(s, [a["b_id"] for a in attempts])
                    keep = [i for i, a in enumerate(attempts) if a["b_id"] in open_]
                    await store.finish_many(s, [notes[i] for i in keep], [attempts[i] for i in keep])
                    await receipts.adopt(s, [attempts[i]["b_id"] for i in keep if attempts[i]["outcome"] == "sent"])
                    await outbox.add(s, store.outbox, [e for i in keep for e in events[i]])
                return
            except Exception as exc:
                if self._stopping.is_set() or not is_infrastructure_error(exc):
                    raise
                log.warning("recording %d send outcome(s) failed (%r); retrying in %.1fs", len(attempts), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _call_channel(self, row: Any) -> tuple[SendResult, float]:
        channel = self.channels.get(row.channel)
        started = time.perf_counter()
        result = await channel.send(row) if channel is not None else channels.not_configured(row.channel)
        elapsed = time.perf_counter() - started
        metrics.SENDS.labels(row.channel, result.provider, result.outcome).inc()
        metrics.SEND_SECONDS.labels(row.channel, result.provider).observe(elapsed)
        return result, elapsed

    def _progress(self, row: Any) -> domain.Progress:
        return domain.Progress(
            notification_id=row.id,
            ticket_id=row.ticket_id,
            template=row.template,
            recipient_kind=row.recipient_kind,
            masked=row.masked_recipient,
            attempts=row.attempts - row.replayed_attempts,  # a replay starts a fresh budget
            provider_index=min(row.provider_index, len(self.routes) - 1) if row.channel == "sms" else 0,
            provider_attempts=row.provider_attempts,
            providers=len(self.routes) if row.channel == "sms" else 1,
            channel=row.channel,
        )

    @staticmethod
    def _next_values(row: Any, a: domain.Attempted, nxt: domain.Next, now: datetime) -> dict[str, Any]:
        return {
            "b_id": row.id,
            "status": nxt.status,
            "provider": a.provider,
            "provider_message_id": a.provider_message_id if nxt.status == "sent" else row.provider_message_id,
            "provider_index": nxt.provider_index,
            "provider_attempts": nxt.provider_attempts,
            "last_code": a.code,
            "last_error": None if nxt.status == "sent" else a.message[:500],
            "sent_at": now if nxt.status == "sent" else None,
            "next_attempt_at": nxt.next_attempt_at,
            "delivery": {"sent": "sent", "failed": "failed"}.get(nxt.status, "pending"),
        }

    @staticmethod
    def _envelopes(row: Any, nxt: domain.Next) -> list[Envelope[Any]]:
        subject = str(row.ticket_id or row.id)
        return [
            Envelope(source="notify", tenant=row.tenant, subject=subject, correlation_id=subject, data=e)
            for e in nxt.events
        ]

    @staticmethod
    def _count(row: Any, a: domain.Attempted, nxt: domain.Next) -> None:
        if nxt.failed_over:
            metrics.FAILOVERS.labels(row.channel, a.provider).inc()
        if nxt.status == "pending" and a.outcome in ("retryable", "not_sent"):
            metrics.RETRIES.labels(row.channel, a.provider).inc()
            if a.retry_after_s:
                metrics.DEFERRALS.labels("provider_flow_control").inc()
        if nxt.status == "failed":
            metrics.DEAD.labels(row.channel, a.code).inc()
        log.info("notification %s attempt %d on %s: %s → %s", row.id, row.attempts, a.provider, a.code, nxt.status)

    def limits(self, row: Any | None) -> domain.TenantLimits:
        return tenant_limits(row, self.default_limits)

    # -- settling ambiguous sends -------------------------------------------------------------

    async def sweep(self, now: datetime) -> int:
        """Rows a killed process left ``sending`` become ``ambiguous`` (to be settled, not resent)."""
        async with self.sessions() as s, s.begin():
            stuck = await store.mark_interrupted_sends(s, now - timedelta(seconds=self.interrupted_after_s), now)
            expired = await store.expire_unreported(s, now - timedelta(seconds=self.receipt_expiry_s))
            await receipts.adopt(s, since=now - timedelta(days=1))
        if expired:
            log.info("%d sent notification(s) got no carrier receipt in time: delivery expired", expired)
        if self.pull_tencent_receipts:
            await self.pull_receipts()
        if stuck:
            metrics.AMBIGUOUS.inc(stuck)
            log.warning("%d notification(s) were interrupted mid-send; settling them from provider records", stuck)
        return stuck

    async def pull_receipts(self) -> int:
        """Drain Tencent's PullSmsSendStatus queue into the receipts (for accounts without a callback URL)."""
        route = self.by_name.get("tencent")
        pull = getattr(route.provider, "pull_reports", None) if route else None
        if pull is None:
            return 0
        total = 0
        for _ in range(10):
            items = await pull(100)
            if not items:
                break
            async with self.sessions() as s, s.begin():
                new, _matched = await receipts.ingest(s, receipts.parse_tencent_pull(items))
            total += new
            if len(items) < 100:
                break
        return total

    async def settle_due(self, now: datetime) -> int:
        lease = self.call_timeout_s * 3 + 5
        async with self.sessions() as s, s.begin():
            rows = await store.claim_unsettled(s, now, self.batch_max, lease)
        if not rows:
            return 0
        decisions = await asyncio.gather(*(self._settle_one(r, now) for r in rows))
        settled = [(r, d) for r, d in zip(rows, decisions, strict=True) if isinstance(d, tuple)]
        later = [(r, d) for r, d in zip(rows, decisions, strict=True) if isinstance(d, datetime)]
        notes, attempts, events = [], [], []
        for row, (lookup, nxt) in settled:
            a = domain.Attempted(
                "sent" if nxt.status == "sent" else "not_sent",
                row.attempt_provider,
                lookup.code or lookup.state,
                f"settled from the provider's records: {lookup.state}",
                lookup.provider_message_id,
            )
            notes.append(self._next_values(row, a, nxt, now))
            attempts.append(
                {
                    "b_id": row.attempt_id,
                    "finished_at": now,
                    "outcome": "sent"
                    if lookup.state == "sent"
                    else ("not_sent" if lookup.state == "not_found" else "ambiguous"),
                    "code": f"settled.{lookup.state}",
                    "message": a.message,
                    "provider_message_id": lookup.provider_message_id,
                    "latency_ms": None,
                }
            )
            events += self._envelopes(row, nxt)
            metrics.SETTLED.labels(row.attempt_provider, lookup.state).inc()
            log.info("ambiguous send %s settled: %s → %s", row.attempt_id, lookup.state, nxt.status)
        async with self.sessions() as s, s.begin():
            for row, at in later:
                await store.reschedule(s, row.id, at)
            await store.finish_many(s, notes, attempts)
            await receipts.adopt(s, [a["b_id"] for a in attempts if a["outcome"] == "sent"])
            await outbox.add(s, store.outbox, events)
        return len(settled)

    async def _settle_one(self, row: Any, now: datetime) -> tuple[Lookup, domain.Next] | datetime:
        """(lookup, decision), or when to look again."""
        started: datetime = row.attempt_started_at
        grace_ends = started + timedelta(seconds=self.policy.settle_grace_s)
        if now < grace_ends:
            return grace_ends
        route = self.by_name.get(row.attempt_provider)
        channel = self.channels.get(row.channel) if row.channel != "sms" else None
        if channel is not None:
            lookup = await channel.lookup(row, started)
        elif route is None or row.address_sealed is None:
            lookup = Lookup("unknown", code="provider_not_configured")
        else:
            phone = self.pii.open(row.address_sealed, PHONE_PURPOSE)
            lookup = await route.provider.lookup(phone, str(row.attempt_id), started.timestamp())
        nxt = domain.settle(
            self._progress(row),
            lookup.state,
            row.attempt_provider,
            lookup.code,
            lookup.provider_message_id,
            started,
            self.policy,
            now,
            self.rng.random(),
        )
        if nxt is None:
            return now + timedelta(seconds=self.policy.settle_retry_s)
        return lookup, nxt
