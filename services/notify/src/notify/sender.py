"""The delivery loop: claim due notifications, call the provider outside any transaction, record the result.

Claim and result are two transactions on purpose: the provider call must never happen inside a
database transaction that could roll back after the SMS went out. A process killed mid-call leaves
the row ``sending``; the sweep turns it ``ambiguous`` instead of sending it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_contracts.envelope import Envelope
from gridline_messaging import outbox
from gridline_pii import Keyring

from . import domain, metrics, store
from .providers.base import SendResult, SmsMessage, SmsProvider

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        provider: SmsProvider,
        pii: Keyring,
        sign_name: str,
        templates: dict[str, str],
        batch_max: int,
        max_attempts: int,
        call_timeout_s: float,
    ) -> None:
        self.sessions = sessions
        self.provider = provider
        self.pii = pii
        self.sign_name = sign_name
        self.templates = templates
        self.batch_max = batch_max
        self.max_attempts = max_attempts
        self.call_timeout_s = call_timeout_s
        self._stopping = asyncio.Event()
        self._last_sweep = datetime.min.replace(tzinfo=UTC)

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                n = await self.run_once()
            except Exception:
                log.exception("sender iteration failed")
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=0.2)

    async def run_once(self) -> int:
        now = datetime.now(UTC)
        if now - self._last_sweep > timedelta(seconds=30):
            self._last_sweep = now
            async with self.sessions() as s, s.begin():
                stuck = await store.mark_interrupted_sends(s, now - timedelta(seconds=self.call_timeout_s * 4))
            if stuck:
                metrics.AMBIGUOUS.inc(stuck)
                log.error("%d notification(s) were interrupted mid-send; marked ambiguous, not resent", stuck)
        async with self.sessions() as s, s.begin():
            rows = await store.claim_due(s, now, self.batch_max)
        if rows:
            await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: Any) -> None:
        code = self.templates.get(row.template)
        if code is None or row.address_sealed is None:
            result = SendResult(
                self.provider.name,
                "rejected",
                None,
                "no_template" if code is None else "no_address",
                "模板未配置" if code is None else "无接收号码",
            )
        else:
            msg = SmsMessage(
                phone=self.pii.open(row.address_sealed, "recipient-phone"),
                sign_name=self.sign_name,
                template_code=code,
                template_params=dict(row.params),
                out_id=str(row.id),
            )
            result = await self.provider.send(msg)
        now = datetime.now(UTC)
        status, events = domain.after_attempt(
            notification_id=row.id,
            ticket_id=row.ticket_id,
            template=row.template,
            recipient_kind=row.recipient_kind,
            masked=row.masked_recipient,
            provider=result.provider,
            outcome=result.outcome,
            code=result.code,
            message=result.message,
            provider_message_id=result.provider_message_id,
            attempts=row.attempts + 1,
            max_attempts=self.max_attempts,
            now=now,
        )
        metrics.SENDS.labels("sms", result.provider, result.outcome).inc()
        backoff = result.retry_after_s or min(2 ** (row.attempts + 1), 300)
        async with self.sessions() as s, s.begin():
            await store.finish(
                s,
                row.id,
                status=status,
                provider=result.provider,
                provider_message_id=result.provider_message_id,
                last_code=result.code,
                last_error=None if status == "sent" else result.message[:500],
                sent_at=now if status == "sent" else None,
                next_attempt_at=now + timedelta(seconds=backoff),
            )
            subject = str(row.ticket_id or row.id)
            await outbox.add(
                s,
                store.outbox,
                [
                    Envelope(source="notify", tenant=row.tenant, subject=subject, correlation_id=subject, data=e)
                    for e in events
                ],
            )
        log.info("notification %s: %s (%s)", row.id, status, result.code)
