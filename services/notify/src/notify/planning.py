"""Turn one notification request into its channel legs: the message, then its fallbacks (rules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import domain, rules

# Purposes the non-SMS addresses are sealed with (SMS numbers use sender.PHONE_PURPOSE).
ADDRESS_PURPOSE = {"wechat": "recipient-wechat-openid", "wecom": "recipient-wecom-userid"}


@dataclass(frozen=True)
class Leg:
    channel: rules.Channel
    template: str
    address_sealed: str | None
    masked: str
    recipient_hash: str | None  # SMS legs only: per-recipient SMS limits count by it

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "template": self.template,
            "address_sealed": self.address_sealed,
            "masked": self.masked,
            "recipient_hash": self.recipient_hash,
        }


def role_of(r: domain.Recipient) -> str:
    if r.kind == "reporter":
        return rules.CITIZEN
    return r.role or "unit_liaison"


def reach_key(
    tenant: str, req: domain.NotificationRequest, phone: tuple[str, str, str | None] | None
) -> tuple[str, str, str] | None:
    """Where the recipient's other addresses and preferences are stored: (tenant, kind, ref)."""
    if role_of(req.recipient) == rules.CITIZEN:
        ref = phone[2] if phone else None
        return (tenant, rules.CITIZEN, ref) if ref else None
    return tenant, req.recipient.table_kind, req.recipient.ref


def legs_for(
    req: domain.NotificationRequest,
    tenant_rules: dict[str, list[rules.Step]],
    phone: tuple[str, str, str | None] | None,
    reach: tuple[dict[str, Any], list[str]],
) -> list[Leg] | None:
    """The legs in sending order; [] when the recipient is reachable on none; None when a tenant rule
    silences this role for the event. ``phone`` = (sealed, masked, hash) when an SMS number is known;
    ``reach`` = the recipient's other addresses (channel → row) and preferred order (`reach_key`)."""
    role = role_of(req.recipient)
    steps = tenant_rules.get(role)
    if steps is not None and not steps:
        return None
    if steps is None:
        steps = rules.default_steps(role, req.template)
    addresses, preferred = reach
    reachable = set(addresses) | ({"sms"} if phone else set())
    legs: list[Leg] = []
    for step in rules.plan(steps, reachable, preferred):
        if step.channel == "sms":
            assert phone is not None
            legs.append(Leg("sms", step.template, phone[0], phone[1], phone[2]))
        else:
            row = addresses[step.channel]
            legs.append(Leg(step.channel, step.template, row.address_sealed, row.masked, None))
    return legs
