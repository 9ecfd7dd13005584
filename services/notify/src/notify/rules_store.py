"""Tables for who-hears-what: tenant rules, recipients' channel addresses and preferences (schema ``notify``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Table, Text, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from . import rules
from .store import metadata

# A tenant's rule for (event type, role): ordered [{"channel", "template"}]; [] silences the role.
tenant_rule = Table(
    "tenant_rule",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("event_type", Text, primary_key=True),
    Column("role", Text, primary_key=True),
    Column("steps", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A recipient's address on a channel other than SMS (WeChat openid, WeCom userid), sealed.
# Staff are keyed like the recipient table (kind = role or "unit", ref = unit/grid code or "*");
# citizens by kind "citizen" and ref = the keyed hash of their phone (gridline_pii.lookup_hash).
recipient_channel = Table(
    "recipient_channel",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("ref", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("address_sealed", Text, nullable=False),
    Column("masked", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A recipient's preferred channel order (channels not named keep the rule's order, after these).
recipient_pref = Table(
    "recipient_pref",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("ref", Text, primary_key=True),
    Column("channels", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _steps(raw: list[dict[str, str]]) -> list[rules.Step]:
    return [rules.Step(s["channel"], s["template"]) for s in raw]  # type: ignore[arg-type]


async def rules_for(session: AsyncSession, tenant: str, event_type: str) -> dict[str, list[rules.Step]]:
    """The tenant's own rules for one event type: role → steps."""
    rows = await session.execute(
        select(tenant_rule.c.role, tenant_rule.c.steps).where(
            tenant_rule.c.tenant == tenant, tenant_rule.c.event_type == event_type
        )
    )
    return {r.role: _steps(r.steps) for r in rows}


async def all_rules(session: AsyncSession, tenant: str) -> dict[tuple[str, str], list[rules.Step]]:
    rows = await session.execute(select(tenant_rule).where(tenant_rule.c.tenant == tenant))
    return {(r.event_type, r.role): _steps(r.steps) for r in rows}


async def put_rule(session: AsyncSession, tenant: str, event_type: str, role: str, steps: list[rules.Step]) -> None:
    values = {
        "tenant": tenant,
        "event_type": event_type,
        "role": role,
        "steps": [{"channel": s.channel, "template": s.template} for s in steps],
    }
    stmt = insert(tenant_rule).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "event_type", "role"],
            set_={"steps": stmt.excluded.steps, "updated_at": func.now()},
        )
    )


async def delete_rule(session: AsyncSession, tenant: str, event_type: str, role: str) -> bool:
    res = await session.execute(
        delete(tenant_rule).where(
            tenant_rule.c.tenant == tenant, tenant_rule.c.event_type == event_type, tenant_rule.c.role == role
        )
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def put_channel(session: AsyncSession, **values: Any) -> None:
    stmt = insert(recipient_channel).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "kind", "ref", "channel"],
            set_={
                "address_sealed": stmt.excluded.address_sealed,
                "masked": stmt.excluded.masked,
                "updated_at": func.now(),
            },
        )
    )


async def delete_channel(session: AsyncSession, tenant: str, kind: str, ref: str, channel: str) -> bool:
    res = await session.execute(
        delete(recipient_channel).where(
            recipient_channel.c.tenant == tenant,
            recipient_channel.c.kind == kind,
            recipient_channel.c.ref == ref,
            recipient_channel.c.channel == channel,
        )
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def put_pref(session: AsyncSession, tenant: str, kind: str, ref: str, channels: list[str]) -> None:
    stmt = insert(recipient_pref).values(tenant=tenant, kind=kind, ref=ref, channels=channels)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "kind", "ref"],
            set_={"channels": stmt.excluded.channels, "updated_at": func.now()},
        )
    )


# One round trip on the consume path: the recipient's addresses, then (channel NULL) its preferences.
_REACH = text(
    """
    SELECT channel, address_sealed, masked, NULL::jsonb AS channels
      FROM notify.recipient_channel WHERE tenant = :tenant AND kind = :kind AND ref = :ref
    UNION ALL
    SELECT NULL, NULL, NULL, channels
      FROM notify.recipient_pref WHERE tenant = :tenant AND kind = :kind AND ref = :ref
    """
)


async def reach(session: AsyncSession, tenant: str, kind: str, ref: str) -> tuple[dict[str, Any], list[str]]:
    """A recipient's non-SMS addresses (channel → row) and preferred channel order."""
    rows = list(await session.execute(_REACH, {"tenant": tenant, "kind": kind, "ref": ref}))
    addresses = {r.channel: r for r in rows if r.channel is not None}
    pref = next((list(r.channels) for r in rows if r.channel is None), [])
    return addresses, pref


_RULES_MANY = text(
    """
    SELECT r.tenant, r.event_type, r.role, r.steps
      FROM notify.tenant_rule r
      JOIN unnest(CAST(:tenants AS text[]), CAST(:types AS text[])) AS k(tenant, event_type)
        ON (r.tenant, r.event_type) = (k.tenant, k.event_type)
    """
)


async def rules_for_many(
    session: AsyncSession, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, list[rules.Step]]]:
    """`rules_for` for every (tenant, event type) of a consumed batch, in one round trip."""
    out: dict[tuple[str, str], dict[str, list[rules.Step]]] = {pair: {} for pair in pairs}
    if not pairs:
        return out
    t, e = (list(col) for col in zip(*sorted(pairs), strict=True))
    for r in await session.execute(_RULES_MANY, {"tenants": t, "types": e}):
        out[(r.tenant, r.event_type)][r.role] = _steps(r.steps)
    return out


_REACH_MANY = text(
    """
    WITH k(tenant, kind, ref) AS (
        SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:kinds AS text[]), CAST(:refs AS text[])))
    SELECT c.tenant, c.kind, c.ref, c.channel, c.address_sealed, c.masked, NULL::jsonb AS channels
      FROM notify.recipient_channel c JOIN k ON (c.tenant, c.kind, c.ref) = (k.tenant, k.kind, k.ref)
    UNION ALL
    SELECT p.tenant, p.kind, p.ref, NULL, NULL, NULL, p.channels
      FROM notify.recipient_pref p JOIN k ON (p.tenant, p.kind, p.ref) = (k.tenant, k.kind, k.ref)
    """
)

Reach = tuple[dict[str, Any], list[str]]


async def reach_many(session: AsyncSession, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], Reach]:
    """`reach` for every (tenant, kind, ref) of a consumed batch, in one round trip."""
    out: dict[tuple[str, str, str], Reach] = {key: ({}, []) for key in keys}
    if not keys:
        return out
    t, k, r = (list(col) for col in zip(*sorted(keys), strict=True))
    for row in await session.execute(_REACH_MANY, {"tenants": t, "kinds": k, "refs": r}):
        addresses, _ = out[(row.tenant, row.kind, row.ref)]
        if row.channel is not None:
            addresses[row.channel] = row
        else:
            out[(row.tenant, row.kind, row.ref)] = (addresses, list(row.channels))
    return out
