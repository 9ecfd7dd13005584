"""notify's tables (schema ``notify``). Never commits: the edge owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    bindparam,
    case,
    func,
    select,
    text,
)
from sqlalchemy import (
    insert as core_insert,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.db import service_metadata
from gridline_messaging.tables import make_inbox_table, make_outbox_table

SCHEMA = "notify"
metadata: MetaData = service_metadata(SCHEMA)

notification = Table(
    "notification",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),  # one event → at most one message per recipient
    Column("tenant", Text, nullable=False),
    Column("ticket_id", Uuid),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("recipient_kind", Text, nullable=False),
    Column("recipient_ref", Text, nullable=False),
    Column("address_sealed", Text),  # phone sealed with notify's key; None until resolved
    Column("masked_recipient", Text, nullable=False),
    # pending → sending → sent | failed | ambiguous (never resent blindly) | pending (retry later)
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("provider", Text),
    Column("provider_message_id", Text),
    Column("last_code", Text),
    Column("last_error", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    # Failover: index into the channel's ordered providers, and attempts made on that one.
    Column("provider_index", Integer, nullable=False, server_default="0"),
    Column("provider_attempts", Integer, nullable=False, server_default="0"),
    Column("attempt_id", Uuid),  # the attempt in flight, or the last one made
    # Keyed HMAC of the number (gridline_pii.lookup_hash): counts sends per recipient, reveals nothing.
    Column("recipient_hash", Text),
    Column("urgent", Boolean, nullable=False, server_default=text("false")),
    # pending → sent → delivered | failed (carrier receipt) | expired (no receipt in time)
    Column("delivery", Text, nullable=False, server_default="pending"),
    Column("replayed_attempts", Integer, nullable=False, server_default="0"),  # attempts before the last replay
    Column("delivered_at", DateTime(timezone=True)),
    # The recipient's next channels if this one definitely does not reach them (planning.Leg.as_json).
    Column("fallback", JSONB(none_as_null=True)),  # SQL NULL, not JSON null, when there is none
)
# The expiry sweep runs every few seconds: only rows still waiting for a receipt are indexed.
Index("ix_notification_awaiting_receipt", notification.c.sent_at, postgresql_where=text("delivery = 'sent'"))
Index(
    "ix_notification_recipient_recent",
    notification.c.recipient_hash,
    notification.c.claimed_at,
    postgresql_where=text("recipient_hash IS NOT NULL"),
)

# Carrier receipts as received (at-least-once: unique per provider report); never the phone in clear.
receipt = Table(
    "receipt",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("attempt_id", Uuid),  # NULL until it matches one of our attempts (it may arrive first)
    Column("notification_id", Uuid),
    Column("out_id", Uuid),
    Column("provider_message_id", Text),
    Column("delivered", Boolean, nullable=False),
    Column("code", Text, nullable=False),
    Column("reported_at", DateTime(timezone=True)),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("ix_receipt_unmatched", receipt.c.provider_message_id, postgresql_where=text("notification_id IS NULL"))

# A tenant's own approved templates (checked against the provider's rules when saved); tenants
# without one use the service's configured template codes.
tenant_template = Table(
    "tenant_template",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("code", Text, nullable=False),
    Column("variables", JSONB, nullable=False),  # in the template's positional order
    Column("text", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A tenant's own delivery limits; tenants without a row use the service defaults (settings).
tenant_limits = Table(
    "tenant_limits",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("quiet_start", Time),  # NULL: no quiet hours
    Column("quiet_end", Time, nullable=False),
    Column("per_recipient_hour", Integer),  # NULL: no limit
    Column("per_recipient_day", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_notification_due", notification.c.next_attempt_at, postgresql_where=text("status = 'pending'"))
Index("ix_notification_unsettled", notification.c.next_attempt_at, postgresql_where=text("status = 'ambiguous'"))
Index("ix_notification_sending", notification.c.claimed_at, postgresql_where=text("status = 'sending'"))

# Every provider call, one row each, written before the call: its id is the OutId/SessionContext the
# provider echoes, so a send cut short can be found in the provider's records afterwards.
attempt = Table(
    "attempt",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("notification_id", Uuid, ForeignKey("notify.notification.id"), nullable=False, index=True),
    Column("no", Integer, nullable=False),
    Column("provider", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    # sending → sent | rejected | retryable | ambiguous; an ambiguous one is later settled → sent | not_sent
    Column("outcome", Text, nullable=False),
    Column("code", Text),
    Column("message", Text),
    Column("provider_message_id", Text, index=True),  # receipts are matched on it
    Column("latency_ms", Integer),
    UniqueConstraint("notification_id", "no"),
)

recipient = Table(
    "recipient",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("ref", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("phone_sealed", Text, nullable=False),
    Column("masked", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = make_outbox_table(metadata)
inbox = make_inbox_table(metadata)


async def add_notification(session: AsyncSession, **values: Any) -> bool:
    stmt = insert(notification).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def get_recipient(session: AsyncSession, tenant: str, kind: str, ref: str) -> Any | None:
    return (
        await session.execute(
            select(recipient).where(recipient.c.tenant == tenant, recipient.c.kind == kind, recipient.c.ref == ref)
        )
    ).first()


_RECIPIENTS = text(
    """
    SELECT r.tenant, r.kind, r.ref, r.phone_sealed, r.masked
      FROM notify.recipient r
      JOIN unnest(CAST(:tenants AS text[]), CAST(:kinds AS text[]), CAST(:refs AS text[])) AS k(tenant, kind, ref)
        ON (r.tenant, r.kind, r.ref) = (k.tenant, k.kind, k.ref)
    """
)


async def get_recipients(session: AsyncSession, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], Any]:
    """(tenant, kind, ref) → recipient row, for a whole consumed batch in one round trip."""
    if not keys:
        return {}
    t, k, r = (list(col) for col in zip(*sorted(keys), strict=True))
    rows = await session.execute(_RECIPIENTS, {"tenants": t, "kinds": k, "refs": r})
    return {(row.tenant, row.kind, row.ref): row for row in rows}


async def add_notifications(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert a batch's notifications in one statement; a dedupe key already there is skipped."""
    if rows:
        stmt = insert(notification).on_conflict_do_nothing(index_elements=["dedupe_key"])
        await session.execute(stmt, rows)


async def upsert_recipient(session: AsyncSession, **values: Any) -> None:
    stmt = insert(recipient).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant", "kind", "ref"],
        set_={
            "name": stmt.excluded.name,
            "phone_sealed": stmt.excluded.phone_sealed,
            "masked": stmt.excluded.masked,
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)


async def lock_due(session: AsyncSession, now: datetime, limit: int) -> list[Any]:
    """Due notifications, locked for this transaction (other senders skip them)."""
    q = (
        select(notification.c.id, notification.c.tenant, notification.c.recipient_hash)
        .where(notification.c.status == "pending", notification.c.next_attempt_at <= now)
        .order_by(notification.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(q)).all())


_RECENT = text(
    """
    SELECT recipient_hash,
           count(*) FILTER (WHERE claimed_at > :hour) AS hour,
           min(claimed_at) FILTER (WHERE claimed_at > :hour) AS oldest_in_hour,
           count(*) AS day,
           min(claimed_at) AS oldest_in_day
      FROM notify.notification
     WHERE recipient_hash = ANY(:hashes) AND claimed_at > :day
       AND status IN ('sent', 'sending', 'ambiguous')
     GROUP BY recipient_hash
    """
)


async def recent_sends(session: AsyncSession, hashes: list[str], now: datetime) -> dict[str, Any]:
    """Per recipient hash: sends (made or in flight) in the last hour and day, with the oldest of each."""
    if not hashes:
        return {}
    params = {"hashes": hashes, "hour": now - timedelta(hours=1), "day": now - timedelta(days=1)}
    return {r.recipient_hash: r for r in await session.execute(_RECENT, params)}


async def limits_for(session: AsyncSession, tenants: list[str]) -> dict[str, Any]:
    rows = await session.execute(select(tenant_limits).where(tenant_limits.c.tenant.in_(tenants)))
    return {r.tenant: r for r in rows}


async def put_limits(session: AsyncSession, **values: Any) -> None:
    stmt = insert(tenant_limits).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant"],
            set_={**{k: stmt.excluded[k] for k in values if k != "tenant"}, "updated_at": func.now()},
        )
    )


async def put_template(session: AsyncSession, **values: Any) -> None:
    stmt = insert(tenant_template).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "provider", "name"],
            set_={
                "code": stmt.excluded.code,
                "variables": stmt.excluded.variables,
                "text": stmt.excluded.text,
                "updated_at": func.now(),
            },
        )
    )


async def templates_for(session: AsyncSession, tenants: list[str]) -> dict[tuple[str, str, str], Any]:
    """(tenant, provider, name) → the tenant's template row."""
    rows = await session.execute(select(tenant_template).where(tenant_template.c.tenant.in_(tenants)))
    return {(r.tenant, r.provider, r.name): r for r in rows}


async def defer(session: AsyncSession, until: dict[uuid.UUID, datetime]) -> None:
    if until:
        await session.execute(
            notification.update().where(notification.c.id == bindparam("b_id")).values(next_attempt_at=bindparam("at")),
            [{"b_id": k, "at": v} for k, v in until.items()],
        )


_CLAIM = text(
    """
    UPDATE notify.notification
       SET status = 'sending', attempts = attempts + 1, provider_attempts = provider_attempts + 1,
           claimed_at = :now, attempt_id = gen_random_uuid()
     WHERE id = ANY(:ids)
    RETURNING *
    """
)


async def claim(session: AsyncSession, ids: list[uuid.UUID], now: datetime, provider_names: list[str]) -> list[Any]:
    """Mark locked rows ``sending`` and write their attempt rows (committed before the provider call)."""
    if not ids:
        return []
    rows = list((await session.execute(_CLAIM, {"now": now, "ids": ids})).all())
    if rows:
        last = len(provider_names) - 1
        await session.execute(
            core_insert(attempt),
            [
                {
                    "id": r.attempt_id,
                    "notification_id": r.id,
                    "no": r.attempts,
                    # WeChat and WeCom have one provider each, named like the channel.
                    "provider": provider_names[min(r.provider_index, last)] if r.channel == "sms" else r.channel,
                    "started_at": now,
                    "outcome": "sending",
                }
                for r in rows
            ],
        )
    return rows


_FINISH_NOTIFICATION = (
    notification.update()
    .where(notification.c.id == bindparam("b_id"))
    .values(
        status=bindparam("status"),
        provider=bindparam("provider"),
        provider_message_id=bindparam("provider_message_id"),
        provider_index=bindparam("provider_index"),
        provider_attempts=bindparam("provider_attempts"),
        last_code=bindparam("last_code"),
        last_error=bindparam("last_error"),
        sent_at=bindparam("sent_at"),
        next_attempt_at=bindparam("next_attempt_at"),
        # A receipt can beat the recording of its own send (Aliyun echoes our attempt id): keep it.
        delivery=case(
            # literal SQL: an expanding IN cannot go through executemany
            (text("notify.notification.delivery IN ('delivered', 'failed')"), notification.c.delivery),
            else_=bindparam("delivery"),
        ),
    )
)
_FINISH_ATTEMPT = (
    attempt.update()
    .where(attempt.c.id == bindparam("b_id"))
    .values(
        finished_at=bindparam("finished_at"),
        outcome=bindparam("outcome"),
        code=bindparam("code"),
        message=bindparam("message"),
        provider_message_id=bindparam("provider_message_id"),
        latency_ms=bindparam("latency_ms"),
    )
)


# A notification that definitely did not reach its recipient on this channel becomes the next channel's
# notification in the same transaction (WeChat 43101 → SMS): a crash leaves either both or neither,
# and the key per (event, recipient, channel) keeps a replayed failure from making a second one.
# "unsettled" ones may have been sent, so they do not fall back.
_FALL_BACK = text(
    """
    INSERT INTO notify.notification (id, dedupe_key, tenant, ticket_id, channel, template, params,
                                     recipient_kind, recipient_ref, address_sealed, masked_recipient,
                                     status, recipient_hash, urgent, next_attempt_at, fallback)
    SELECT gen_random_uuid(), n.dedupe_key || '>' || (n.fallback->0->>'channel'), n.tenant, n.ticket_id,
           n.fallback->0->>'channel', n.fallback->0->>'template', n.params, n.recipient_kind, n.recipient_ref,
           n.fallback->0->>'address_sealed', n.fallback->0->>'masked', 'pending',
           n.fallback->0->>'recipient_hash', n.urgent, now(),
           CASE WHEN jsonb_array_length(n.fallback) > 1 THEN n.fallback - 0 END
      FROM notify.notification n
     WHERE n.id = ANY(:ids) AND n.status = 'failed'
       AND CASE WHEN jsonb_typeof(n.fallback) = 'array' THEN jsonb_array_length(n.fallback) > 0 ELSE false END
       AND n.last_code IS DISTINCT FROM 'unsettled'
    ON CONFLICT (dedupe_key) DO NOTHING
    """
)


async def finish_many(
    session: AsyncSession, notifications: list[dict[str, Any]], attempts: list[dict[str, Any]]
) -> None:
    """Record a batch of outcomes: one executemany per table (keys ``b_id`` + the columns above)."""
    if notifications:
        await session.execute(_FINISH_NOTIFICATION, notifications)
        failed = [n["b_id"] for n in notifications if n["status"] == "failed"]
        if failed:
            await session.execute(_FALL_BACK, {"ids": failed})
    if attempts:
        await session.execute(_FINISH_ATTEMPT, attempts)


async def unfinished_attempts(session: AsyncSession, ids: list[Any]) -> set[Any]:
    """Of these attempts, the ones still ``sending`` (locked: their outcome is about to be written)."""
    if not ids:
        return set()
    res = await session.execute(
        select(attempt.c.id).where(attempt.c.id.in_(ids), attempt.c.outcome == "sending").with_for_update()
    )
    return {r.id for r in res}


async def mark_interrupted_sends(session: AsyncSession, older_than: datetime, now: datetime) -> int:
    """Rows left ``sending`` by a killed process: the provider may have sent them. Never resend; settle."""
    res = await session.execute(
        notification.update()
        .where(notification.c.status == "sending", notification.c.claimed_at < older_than)
        .values(
            status="ambiguous",
            last_code="interrupted",
            last_error="process stopped during the provider call",
            next_attempt_at=now,
        )
        .returning(notification.c.attempt_id)
    )
    ids = [r.attempt_id for r in res]
    if ids:
        await session.execute(
            attempt.update()
            .where(attempt.c.id.in_(ids), attempt.c.outcome == "sending")
            .values(outcome="ambiguous", code="interrupted", finished_at=now)
        )
    return len(ids)


async def claim_unsettled(session: AsyncSession, now: datetime, limit: int, lease_s: float) -> list[Any]:
    """Ambiguous notifications due for a lookup, with their last attempt; leased so replicas don't double-ask."""
    due = (
        select(notification.c.id)
        .where(notification.c.status == "ambiguous", notification.c.next_attempt_at <= now)
        .order_by(notification.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    ids = [
        r.id
        for r in await session.execute(
            notification.update()
            .where(notification.c.id.in_(due))
            .values(next_attempt_at=now + timedelta(seconds=lease_s))
            .returning(notification.c.id)
        )
    ]
    if not ids:
        return []
    q = (
        select(
            notification,
            attempt.c.provider.label("attempt_provider"),
            attempt.c.started_at.label("attempt_started_at"),
        )
        .join(attempt, attempt.c.id == notification.c.attempt_id)
        .where(notification.c.id.in_(ids))
    )
    return list((await session.execute(q)).all())


async def match_attempts(
    session: AsyncSession, provider: str, out_ids: list[uuid.UUID], message_ids: list[str]
) -> tuple[dict[uuid.UUID, Any], dict[str, Any]]:
    """Our attempts a batch of receipts refers to: by echoed out id, and by the provider's message id."""
    cols = (attempt.c.id, attempt.c.notification_id, notification.c.delivery, attempt.c.provider_message_id)
    base = select(*cols).join(notification, notification.c.id == attempt.c.notification_id)
    by_id = {r.id: r for r in await session.execute(base.where(attempt.c.id.in_(out_ids)))} if out_ids else {}
    by_msg = (
        {
            r.provider_message_id: r
            for r in await session.execute(
                base.where(attempt.c.provider == provider, attempt.c.provider_message_id.in_(message_ids))
            )
        }
        if message_ids
        else {}
    )
    return by_id, by_msg


async def add_receipt(session: AsyncSession, **values: Any) -> bool:
    """Store one receipt; False when this report was already received (providers re-push)."""
    stmt = insert(receipt).values(**values).on_conflict_do_nothing(index_elements=["provider", "key"])
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


_ADOPT = """
    UPDATE notify.receipt r
       SET attempt_id = a.id, notification_id = a.notification_id
      FROM notify.attempt a
     WHERE r.notification_id IS NULL AND r.provider = a.provider
       AND (r.out_id = a.id OR r.provider_message_id = a.provider_message_id)
       AND {scope}
    RETURNING r.notification_id, r.delivered, r.reported_at
"""
_ADOPT_FOR = text(_ADOPT.format(scope="a.id = ANY(:ids)"))
_ADOPT_RECENT = text(_ADOPT.format(scope="r.received_at > :since"))


async def adopt_early_receipts(
    session: AsyncSession, attempt_ids: list[uuid.UUID] | None = None, since: datetime | None = None
) -> list[Any]:
    """Link receipts that arrived before their sends were recorded: for these attempts, or all recent ones.

    The recent sweep closes the race where a receipt and its send's outcome commit concurrently and
    neither transaction sees the other.
    """
    if attempt_ids is not None:
        if not attempt_ids:
            return []
        return list((await session.execute(_ADOPT_FOR, {"ids": attempt_ids})).all())
    return list((await session.execute(_ADOPT_RECENT, {"since": since})).all())


async def set_delivery(session: AsyncSession, nid: uuid.UUID, delivery: str, at: datetime | None) -> None:
    await session.execute(
        notification.update().where(notification.c.id == nid).values(delivery=delivery, delivered_at=at)
    )


async def expire_unreported(session: AsyncSession, sent_before: datetime) -> int:
    res = await session.execute(
        notification.update()
        .where(notification.c.delivery == "sent", notification.c.sent_at < sent_before)
        .values(delivery="expired")
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


async def replay_failed(
    session: AsyncSession, now: datetime, *, tenant: str | None, code: str | None, since: datetime | None
) -> int:
    """Put failed notifications back in the queue with a fresh attempt budget, first provider first.

    ``unsettled`` ones (maybe sent, never proved) come back only when asked for by that code.
    """
    q = notification.update().where(notification.c.status == "failed")
    if tenant is not None:
        q = q.where(notification.c.tenant == tenant)
    q = (
        q.where(notification.c.last_code == code)
        if code is not None
        else q.where(notification.c.last_code != "unsettled")
    )
    if since is not None:
        q = q.where(notification.c.created_at >= since)
    res = await session.execute(
        q.values(
            status="pending",
            next_attempt_at=now,
            provider_index=0,
            provider_attempts=0,
            replayed_attempts=notification.c.attempts,
            delivery="pending",
        )
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


async def reschedule(session: AsyncSession, nid: uuid.UUID, at: datetime) -> None:
    await session.execute(notification.update().where(notification.c.id == nid).values(next_attempt_at=at))


async def attempts_of(session: AsyncSession, tenant: str, nid: uuid.UUID) -> list[Any] | None:
    """A notification's attempts in order; None when the tenant has no such notification."""
    found = await session.execute(
        select(notification.c.id).where(notification.c.id == nid, notification.c.tenant == tenant)
    )
    if found.first() is None:
        return None
    return list(
        (await session.execute(select(attempt).where(attempt.c.notification_id == nid).order_by(attempt.c.no))).all()
    )


async def list_for_ticket(session: AsyncSession, tenant: str, ticket_id: uuid.UUID) -> list[Any]:
    return list(
        (
            await session.execute(
                select(notification)
                .where(notification.c.tenant == tenant, notification.c.ticket_id == ticket_id)
                .order_by(notification.c.created_at)
            )
        ).all()
    )


from . import rules_store as _rules_store  # noqa: E402, F401  (its tables belong to this metadata)
from . import syncback_store as _syncback_store  # noqa: E402, F401  (its tables belong to this metadata)
