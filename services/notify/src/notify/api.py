"""notify's HTTP API: recipients' contact data (admin) and delivery records per ticket."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError
from gridline_pii import InvalidPhone, Keyring, mask_phone, normalize_phone

from . import domain, receipts, store
from .domain import ROLES

# "unit" is a unit's liaison (联络员); the others are directory roles, keyed by unit code, grid code,
# or "*" for tenant-wide roles (district leader, supervisor).
RECIPIENT_KINDS = ("unit", "grid_staff", *(r for r in ROLES if r != "unit_liaison"))


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=5, max_length=32)


class RecipientOut(BaseModel):
    tenant: str
    kind: str
    ref: str
    name: str
    masked_phone: str


class NotificationOut(BaseModel):
    id: uuid.UUID
    template: str
    recipient_kind: str
    masked_recipient: str
    status: str
    attempts: int
    provider: str | None
    last_code: str | None
    next_attempt_at: datetime | None = None
    delivery: str = "pending"  # pending | sent | delivered | failed | expired
    delivered_at: datetime | None = None


class AttemptOut(BaseModel):
    no: int
    provider: str
    outcome: str
    code: str | None
    provider_message_id: str | None
    started_at: datetime
    finished_at: datetime | None
    latency_ms: int | None


class LimitsIn(BaseModel):
    """A tenant's delivery limits; replaces the service defaults for that tenant."""

    model_config = ConfigDict(extra="forbid")
    quiet_start: time | None = Field(default=None, description="start of quiet hours (local); null: none")
    quiet_end: time = time(8, 0)
    per_recipient_hour: int | None = Field(default=None, ge=1, le=1000)
    per_recipient_day: int | None = Field(default=None, ge=1, le=10000)


class LimitsOut(LimitsIn):
    tenant: str


class TemplateIn(BaseModel):
    """A template the provider approved for this tenant, as approved (text with its placeholders)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=1000)
    variables: list[str] = Field(default_factory=list, max_length=10)


class TemplateOut(TemplateIn):
    tenant: str
    provider: str
    name: str


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def get_pii(request: Request) -> Keyring:
    pii: Keyring = request.app.state.pii
    return pii


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
Pii = Annotated[Keyring, Depends(get_pii)]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["notify"])

    @router.put("/recipients/{kind}/{ref}", response_model=RecipientOut)
    async def put_recipient(tenant: str, kind: str, ref: str, body: RecipientIn, sessions: Sessions, pii: Pii) -> Any:
        """Set who receives a unit's (or grid's) notifications. The number is sealed; only its mask comes back."""
        if kind not in RECIPIENT_KINDS:
            raise ApiError(
                422, "invalid_recipient_kind", f"接收人类型应为 {'、'.join(RECIPIENT_KINDS)} 之一（unit 即单位联络员）"
            )
        try:
            phone = normalize_phone(body.phone)
        except InvalidPhone as exc:
            raise ApiError(422, "invalid_phone", str(exc)) from exc
        masked = mask_phone(phone)
        async with sessions() as s, s.begin():
            await store.upsert_recipient(
                s,
                tenant=tenant,
                kind=kind,
                ref=ref,
                name=body.name,
                phone_sealed=pii.seal(phone, "recipient-phone"),
                masked=masked,
            )
        return RecipientOut(tenant=tenant, kind=kind, ref=ref, name=body.name, masked_phone=masked)

    @router.get("/tickets/{ticket_id}/notifications", response_model=list[NotificationOut])
    async def ticket_notifications(tenant: str, ticket_id: uuid.UUID, sessions: Sessions) -> Any:
        """Every notification about a ticket and where its delivery stands."""
        async with sessions() as s:
            rows = await store.list_for_ticket(s, tenant, ticket_id)
        return [
            NotificationOut(
                id=r.id,
                template=r.template,
                recipient_kind=r.recipient_kind,
                masked_recipient=r.masked_recipient,
                status=r.status,
                attempts=r.attempts,
                provider=r.provider,
                last_code=r.last_code,
                next_attempt_at=r.next_attempt_at,
                delivery=r.delivery,
                delivered_at=r.delivered_at,
            )
            for r in rows
        ]

    @router.put("/templates/{provider}/{name}", response_model=TemplateOut)
    async def put_template(
        tenant: str, provider: str, name: str, body: TemplateIn, sessions: Sessions, request: Request
    ) -> Any:
        """Save a tenant's template after checking it against the provider's rules (length, keywords, variables)."""
        if provider not in ("aliyun", "tencent"):
            raise ApiError(422, "invalid_provider", "服务商应为 aliyun 或 tencent")
        limit = getattr(request.app.state, "tencent_variable_max_chars", None)
        problems = domain.check_template(name, provider, body.text, body.variables, tencent_variable_max_chars=limit)
        if problems:
            raise ApiError(
                422, problems[0].code, problems[0].message, [{"code": p.code, "message": p.message} for p in problems]
            )
        async with sessions() as s, s.begin():
            await store.put_template(s, tenant=tenant, provider=provider, name=name, **body.model_dump())
        return TemplateOut(tenant=tenant, provider=provider, name=name, **body.model_dump())

    @router.put("/limits", response_model=LimitsOut)
    async def put_limits(tenant: str, body: LimitsIn, sessions: Sessions) -> Any:
        """Quiet hours for non-urgent citizen messages and per-recipient send limits for this tenant."""
        if body.quiet_start is not None and body.quiet_start == body.quiet_end:
            raise ApiError(422, "invalid_quiet_hours", "免打扰时段的开始和结束不能相同")
        async with sessions() as s, s.begin():
            await store.put_limits(s, tenant=tenant, **body.model_dump())
        return LimitsOut(tenant=tenant, **body.model_dump())

    @router.get("/notifications/{notification_id}/attempts", response_model=list[AttemptOut])
    async def notification_attempts(tenant: str, notification_id: uuid.UUID, sessions: Sessions) -> Any:
        """Every provider call made for one notification, in order, with how each ended."""
        async with sessions() as s:
            rows = await store.attempts_of(s, tenant, notification_id)
        if rows is None:
            raise ApiError(404, "notification_not_found", "没有这条通知")
        return [AttemptOut.model_validate(r, from_attributes=True) for r in rows]

    return router


def build_receipts_router(token: str | None) -> APIRouter:
    """Where Aliyun (SmsReport) and Tencent (status callback) push delivery receipts.

    The providers sign nothing here: the URL configured in their consoles carries ``?token=`` when a
    token is set, and the endpoints are meant to sit behind an IP allow-list of the providers.
    """
    router = APIRouter(prefix="/v1/receipts", tags=["receipts"])

    def check(request: Request) -> None:
        given = request.query_params.get("token", "")
        if token is not None and not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(403, "bad_receipt_token", "回执地址的令牌不正确")

    async def body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise ApiError(422, "invalid_receipt", "回执不是合法的 JSON") from exc

    @router.post("/aliyun")
    async def aliyun_report(request: Request, sessions: Sessions, pii: Pii) -> dict[str, Any]:
        """Aliyun SmsReport push: answers ``{"code":0,"msg":"接收成功"}`` as Aliyun expects."""
        check(request)
        try:
            parsed = receipts.parse_aliyun(await body(request), pii.hmac_key())
        except receipts.BadReceipt as exc:
            raise ApiError(422, "invalid_receipt", f"回执格式不正确: {exc}") from exc
        async with sessions() as s, s.begin():
            await receipts.ingest(s, parsed)
        return {"code": 0, "msg": "接收成功"}

    @router.post("/tencent")
    async def tencent_report(request: Request, sessions: Sessions) -> dict[str, Any]:
        """Tencent SMS status callback: answers ``{"result":0,"errmsg":"OK"}``."""
        check(request)
        try:
            parsed = receipts.parse_tencent_callback(await body(request))
        except receipts.BadReceipt as exc:
            raise ApiError(422, "invalid_receipt", f"回执格式不正确: {exc}") from exc
        async with sessions() as s, s.begin():
            await receipts.ingest(s, parsed)
        return {"result": 0, "errmsg": "OK"}

    return router
