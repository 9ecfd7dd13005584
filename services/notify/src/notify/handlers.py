"""Kafka-driven use cases: turn events into notification rows (same transaction as the inbox)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.escalation import EscalationRaisedV1, SlaBreachedV1, SlaClockStartedV1, SlaWarnedV1
from gridline_contracts.intake import TicketClosedV1, TicketReceivedV1
from gridline_messaging.consumer import Handler
from gridline_pii import Keyring, KeyringError, lookup_hash, mask_phone

from . import domain, metrics, planning, rules_store, store, syncback, unit_of_work
from .sender import PHONE_PURPOSE, tenant_limits

log = logging.getLogger(__name__)

REPORTER_CONTACT = "reporter-contact"  # the purpose intake seals contact tokens with


class Handlers:
    def __init__(self, *, pii: Keyring, transit: Keyring, default_limits: domain.TenantLimits | None = None) -> None:
        self.pii = pii
        self.transit = transit
        self.defaults = default_limits or domain.TenantLimits()

    def table(self) -> dict[type[EventData], Handler]:
        """Every event notify acts on → its handler."""
        return {
            TicketReceivedV1: self.on_ticket_received,
            SlaClockStartedV1: self.on_clock_started,
            SlaWarnedV1: self.on_sla_warned,
            SlaBreachedV1: self.on_sla_breached,
            EscalationRaisedV1: self.on_escalation,
            **syncback.transition_handlers(),  # 12345 sync-back of hotline orders
            TicketClosedV1: self.on_ticket_closed,  # after the merge: it also does the sync-back
        }

    async def on_sla_warned(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_sla_warned(env.id, env.data))

    async def on_sla_breached(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_sla_breached(env.id, env.data))

    async def on_escalation(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_escalation(env.id, env.data))

    async def on_ticket_received(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_ticket_received(env.id, env.data))
        await syncback.on_ticket_received(session, env)

    async def on_ticket_closed(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_ticket_closed(env.id, env.data))
        await syncback.on_transition(session, env)

    async def on_clock_started(self, session: AsyncSession, env: Envelope[Any]) -> None:
        await self._record(session, env, domain.on_clock_started(env.id, env.data))

    async def _record(
        self, session: AsyncSession, env: Envelope[Any], requests: list[domain.NotificationRequest]
    ) -> None:
        # Resolved and inserted with the rest of the consumed batch, just before its commit.
        unit_of_work.buffer(session, "notify.requests", self._flush).append((env, requests))

    async def _flush(self, session: AsyncSession, items: list[tuple[Envelope[Any], list[Any]]]) -> None:
        """A consumed batch's requests → notification rows: five round trips however large the batch."""
        now = datetime.now(UTC)
        # Rules can re-route these requests, or add roles to an SLA event; nothing to do otherwise.
        relevant = {(e.tenant, e.data.TYPE) for e, reqs in items if reqs or isinstance(e.data, domain.SlaEvent)}
        rules_by = await rules_store.rules_for_many(session, relevant)
        work: list[tuple[Envelope[Any], domain.NotificationRequest, dict[str, list[Any]]]] = []
        for env, reqs in items:
            tenant_rules = rules_by.get((env.tenant, env.data.TYPE), {})
            work += [(env, r, tenant_rules) for r in reqs + self._added_roles(env, reqs, tenant_rules)]
        directory = await store.get_recipients(
            session,
            {
                (e.tenant, r.recipient.table_kind, r.recipient.ref)
                for e, r, _ in work
                if r.recipient.contact_token is None
            },
        )
        resolved = [self._resolve(env.tenant, req.recipient, directory) for env, req, _ in work]
        phones = [
            (sealed, masked, phone_hash) if status == "pending" and sealed is not None else None
            for sealed, masked, status, _error, phone_hash in resolved
        ]
        keys = [planning.reach_key(env.tenant, req, phone) for (env, req, _), phone in zip(work, phones, strict=True)]
        reach = await rules_store.reach_many(session, {k for k in keys if k is not None})
        holdable = {env.tenant for env, req, _ in work if req.holdable and req.recipient.kind == "reporter"}
        overrides = await store.limits_for(session, sorted(holdable)) if holdable else {}
        rows: list[dict[str, Any]] = []
        for (env, req, tenant_rules), res, phone, key in zip(work, resolved, phones, keys, strict=True):
            sealed, masked, status, error, phone_hash = res
            # Channels: the first reachable one in the rule/preference order; the rest are its fallbacks.
            legs = planning.legs_for(req, tenant_rules, phone, reach[key] if key else ({}, []))
            if legs is None:
                continue  # the tenant's rule silences this role for this event
            channel, template, fallback = "sms", req.template, None
            if legs:
                first, rest = legs[0], legs[1:]
                channel, template, sealed, masked = first.channel, first.template, first.address_sealed, first.masked
                status, error, phone_hash = "pending", None, first.recipient_hash
                fallback = [leg.as_json() for leg in rest] or None
            not_before = None
            if status == "pending" and req.holdable and req.recipient.kind == "reporter" and not req.urgent:
                limits = tenant_limits(overrides.get(env.tenant), self.defaults)
                not_before = domain.quiet_until(now, limits, citizen=True, urgent=req.urgent)
                if not_before is not None:
                    metrics.DEFERRALS.labels("quiet_hours").inc()
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "dedupe_key": req.dedupe_key,
                    "tenant": env.tenant,
                    "ticket_id": req.ticket_id,
                    "channel": channel,
                    "template": template,
                    "params": req.params,
                    "recipient_kind": req.recipient.kind,
                    "recipient_ref": req.recipient.ref,
                    "address_sealed": sealed,
                    "masked_recipient": masked,
                    "status": status,
                    "last_code": error,
                    "recipient_hash": phone_hash,
                    "urgent": req.urgent,
                    "next_attempt_at": not_before or now,
                    "fallback": fallback,
                }
            )
        await store.add_notifications(session, rows)

    @staticmethod
    def _added_roles(
        env: Envelope[Any], requests: list[domain.NotificationRequest], tenant_rules: dict[str, list[Any]]
    ) -> list[domain.NotificationRequest]:
        """Requests for staff roles the tenant's rules add to an SLA event that does not name them."""
        if not isinstance(env.data, domain.SlaEvent) or not tenant_rules:
            return []
        named = {planning.role_of(r.recipient) for r in requests}
        added = {role: steps[0].template for role, steps in tenant_rules.items() if steps and role not in named}
        return domain.for_added_roles(env.id, env.data, list(added), added) if added else []

    def _resolve(
        self, tenant: str, r: domain.Recipient, directory: dict[tuple[str, str, str], Any]
    ) -> tuple[str | None, str, str, str | None, str | None]:
        """(sealed phone, masked phone, status, error code, lookup hash): re-sealed under notify's own key."""
        if r.contact_token is not None:
            try:
                phone = self.transit.open(r.contact_token, REPORTER_CONTACT)
            except KeyringError:
                log.error("contact token does not open with the transit keyring")
                return None, "—", "failed", "bad_contact_token", None
            return self.pii.seal(phone, PHONE_PURPOSE), mask_phone(phone), "pending", None, self._hash(phone)
        row = directory.get((tenant, r.table_kind, r.ref))
        if row is None:
            log.warning("no %s recipient %s in tenant %s", r.table_kind, r.ref, tenant)
            return None, "—", "failed", "no_recipient", None
        phone = self.pii.open(row.phone_sealed, PHONE_PURPOSE)
        return row.phone_sealed, row.masked, "pending", None, self._hash(phone)

    def _hash(self, phone: str) -> str:
        return lookup_hash(phone, self.pii.hmac_key())
