"""Admin API for who hears what: tenant rules, recipients' WeChat/WeCom addresses and channel preferences."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gridline_boot.http import ApiError
from gridline_pii import InvalidPhone, lookup_hash, normalize_phone

from . import domain, rules, rules_store
from .api import RECIPIENT_KINDS, Pii, Sessions
from .planning import ADDRESS_PURPOSE


class StepIO(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "wechat", "wecom"]
    template: str = Field(min_length=1, max_length=64)


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[StepIO] = Field(max_length=3, description="in sending order; [] silences the role for the event")


class RuleOut(RuleIn):
    event_type: str
    role: str
    source: Literal["tenant", "default"]


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    address: str = Field(min_length=1, max_length=128, description="WeChat openid or WeCom userid")


class CitizenWechatIn(BaseModel):
    """A citizen's mini-program identity, bound to the phone they report with (sent by the mini-program backend)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    phone: str = Field(min_length=5, max_length=32)
    openid: str = Field(min_length=1, max_length=128)


class PrefIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[Literal["sms", "wechat", "wecom"]] = Field(max_length=3)


class CitizenPrefIn(PrefIn):
    phone: str = Field(min_length=5, max_length=32)  # in the body: never in a URL or an access log


class ChannelOut(BaseModel):
    kind: str
    ref: str
    channel: str
    masked: str


def _mask(address: str) -> str:
    return address[:2] + "****" + address[-4:] if len(address) > 8 else "****"


def _problem(problems: list[rules.RuleProblem]) -> ApiError:
    first = problems[0]
    return ApiError(422, first.code, first.message, details=[{"code": p.code, "message": p.message} for p in problems])


def _effective_default(event_type: str, role: str) -> list[rules.Step] | None:
    """The seeded default for (event, role): the template domain.on_* uses, on the role's channels."""
    template = DEFAULT_TEMPLATE.get(event_type)
    if template is None or role not in DEFAULT_ROLES.get(event_type, rules.STAFF_ROLES):
        return None
    return rules.default_steps(role, template)


# Who hears each event without tenant rules (domain.on_*); sla.escalated: whoever the rung names.
DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    "ticket.received": (rules.CITIZEN,),
    "ticket.closed": (rules.CITIZEN,),
    "sla.clock_started": ("unit_liaison",),
    "sla.warned": ("unit_liaison",),
    "sla.breached": ("unit_liaison", "unit_head"),
}


# Which of our templates each event uses by default (domain.on_*).
DEFAULT_TEMPLATE = {
    "ticket.received": "ticket_received",
    "ticket.closed": "ticket_result",
    "sla.clock_started": "ticket_assigned",
    "sla.warned": "sla_warning",
    "sla.breached": "sla_breached",
    "sla.escalated": "escalation_raised",
}


def build_rules_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["notify rules"])

    @router.get("/rules", response_model=list[RuleOut])
    async def list_rules(tenant: str, sessions: Sessions) -> Any:
        """Every (event, role) with its channel steps: the tenant's own rules, then the defaults they leave."""
        async with sessions() as s:
            own = await rules_store.all_rules(s, tenant)
        out = [
            RuleOut(event_type=e, role=r, source="tenant", steps=[StepIO(**vars(x)) for x in steps])
            for (e, r), steps in sorted(own.items())
        ]
        for event_type in rules.EVENT_VARIABLES:
            for role in rules.ROLES:
                steps = _effective_default(event_type, role)
                if steps is not None and (event_type, role) not in own:
                    out.append(
                        RuleOut(
                            event_type=event_type, role=role, source="default", steps=[StepIO(**vars(x)) for x in steps]
                        )
                    )
        return out

    @router.put("/rules/{event_type}/{role}", response_model=RuleOut)
    async def put_rule(tenant: str, event_type: str, role: str, body: RuleIn, sessions: Sessions) -> Any:
        """Set the ordered channels (and the template on each) for one role hearing one event."""
        steps = [rules.Step(s.channel, s.template) for s in body.steps]
        problems = rules.check_rule(event_type, role, steps, domain.TEMPLATE_VARIABLES)
        if problems:
            raise _problem(problems)
        async with sessions() as s, s.begin():
            await rules_store.put_rule(s, tenant, event_type, role, steps)
        return RuleOut(event_type=event_type, role=role, source="tenant", steps=body.steps)

    @router.delete("/rules/{event_type}/{role}", status_code=204)
    async def delete_rule(tenant: str, event_type: str, role: str, sessions: Sessions) -> None:
        """Back to the default for this (event, role)."""
        async with sessions() as s, s.begin():
            if not await rules_store.delete_rule(s, tenant, event_type, role):
                raise ApiError(404, "rule_not_found", "该租户没有这条规则")

    @router.put("/recipients/{kind}/{ref}/channels/{channel}", response_model=ChannelOut)
    async def put_staff_channel(
        tenant: str, kind: str, ref: str, channel: str, body: AddressIn, sessions: Sessions, pii: Pii
    ) -> Any:
        """A staff member's WeCom userid (kind/ref as for the phone: unit, grid_head …)."""
        if kind not in RECIPIENT_KINDS:
            raise ApiError(422, "invalid_recipient_kind", f"接收人类型应为 {'、'.join(RECIPIENT_KINDS)} 之一")
        if channel != "wecom":
            raise ApiError(422, "channel_not_for_role", "工作人员只能登记企业微信（wecom）账号，手机号另行登记")
        masked = _mask(body.address)
        sealed = pii.seal(body.address, ADDRESS_PURPOSE["wecom"])
        async with sessions() as s, s.begin():
            await rules_store.put_channel(
                s, tenant=tenant, kind=kind, ref=ref, channel=channel, address_sealed=sealed, masked=masked
            )
        return ChannelOut(kind=kind, ref=ref, channel=channel, masked=masked)

    @router.put("/recipients/{kind}/{ref}/preferences", response_model=PrefIn)
    async def put_staff_pref(tenant: str, kind: str, ref: str, body: PrefIn, sessions: Sessions) -> Any:
        """A staff member's preferred channel order (e.g. ["sms"] to be texted before WeCom)."""
        if kind not in RECIPIENT_KINDS:
            raise ApiError(422, "invalid_recipient_kind", f"接收人类型应为 {'、'.join(RECIPIENT_KINDS)} 之一")
        if "wechat" in body.channels or len(set(body.channels)) != len(body.channels):
            raise ApiError(422, "invalid_preferences", "工作人员的渠道偏好只能是 wecom、sms，且不能重复")
        async with sessions() as s, s.begin():
            await rules_store.put_pref(s, tenant, kind, ref, list(body.channels))
        return body

    @router.put("/citizens/wechat", response_model=ChannelOut)
    async def put_citizen_wechat(tenant: str, body: CitizenWechatIn, sessions: Sessions, pii: Pii) -> Any:
        """Bind a citizen's openid to their phone: their receipts then go to the mini-program first."""
        try:
            phone = normalize_phone(body.phone)
        except InvalidPhone as exc:
            raise ApiError(422, "invalid_phone", "手机号码格式不正确") from exc
        ref = lookup_hash(phone, pii.hmac_key())
        masked = _mask(body.openid)
        async with sessions() as s, s.begin():
            await rules_store.put_channel(
                s,
                tenant=tenant,
                kind=rules.CITIZEN,
                ref=ref,
                channel="wechat",
                address_sealed=pii.seal(body.openid, ADDRESS_PURPOSE["wechat"]),
                masked=masked,
            )
        return ChannelOut(kind=rules.CITIZEN, ref="—", channel="wechat", masked=masked)

    @router.put("/citizens/preferences", response_model=PrefIn)
    async def put_citizen_pref(tenant: str, body: CitizenPrefIn, sessions: Sessions, pii: Pii) -> Any:
        """A citizen's preferred order, e.g. ["sms"] for someone who wants texts even with an openid bound."""
        try:
            normalized = normalize_phone(body.phone)
        except InvalidPhone as exc:
            raise ApiError(422, "invalid_phone", "手机号码格式不正确") from exc
        if "wecom" in body.channels or len(set(body.channels)) != len(body.channels):
            raise ApiError(422, "invalid_preferences", "市民的渠道偏好只能是 wechat、sms，且不能重复")
        async with sessions() as s, s.begin():
            ref = lookup_hash(normalized, pii.hmac_key())
            await rules_store.put_pref(s, tenant, rules.CITIZEN, ref, list(body.channels))
        return PrefIn(channels=body.channels)

    return router
