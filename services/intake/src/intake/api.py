"""intake's HTTP API: citizen reports in, ticket status and history out."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError

from gridline_boot.http import ApiError
from gridline_boot.logging import bind
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import DemandType, Priority, ReporterRef
from gridline_geo.crs import to_wgs84
from gridline_messaging import outbox as outbox_mod
from gridline_pii import InvalidPhone, lookup_hash, mask_phone, normalize_phone

from . import domain, store
from .deps import Deps

TENANT_RE = re.compile(r"^\d{6}$")
SHANGHAI = ZoneInfo("Asia/Shanghai")
REPORTER_CONTACT = "reporter-contact"  # purpose bound into transit tokens


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "gcj02", "bd09"] = Field(
        default="gcj02", description="坐标系：wx.getLocation 默认返回 gcj02；百度地图为 bd09"
    )


class CitizenReportIn(BaseModel):
    """随手拍 citizen report, as a WeChat mini-program backend submits it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    tenant: str = Field(description="GB/T 2260 行政区划代码（6 位）")
    category_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field(min_length=2, max_length=4000)
    demand_type: DemandType | None = None
    priority: Priority = "normal"
    location: LocationIn | None = None
    address: str | None = Field(default=None, max_length=500)
    area_code: str | None = Field(default=None, pattern=r"^\d{6,12}$")
    phone: str | None = Field(default=None, max_length=32)
    openid: str | None = Field(default=None, max_length=128)
    anonymous: bool = False
    confidential: bool = False
    reported_at: datetime | None = None

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        if not TENANT_RE.match(v):
            raise ValueError("tenant 必须是 6 位行政区划代码")
        return v

    @field_validator("reported_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("reported_at 必须带时区")
        return v


class ReportAccepted(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str = Field(description="工单编号")
    query_code: str = Field(description="查询码：凭工单编号和查询码查询办理进度")
    status: str
    received_at: datetime


class TicketOut(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str
    tenant: str
    status: str
    channel: str
    category_code: str
    priority: str
    description: str
    location: dict[str, Any] | None
    address: str | None
    reporter: ReporterRef
    unit_code: str | None
    grid_code: str | None
    sla_policy_key: str | None
    received_at: datetime
    dispatched_at: datetime | None


class HistoryOut(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    note: str


def _hash_query_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _request_hash(body: CitizenReportIn) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["intake"])

    @router.post("/reports", status_code=201, response_model=ReportAccepted)
    async def submit_report(
        body: CitizenReportIn,
        request: Request,
        deps: DepsDep,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        """Submit a citizen report (随手拍). Retrying with the same `Idempotency-Key` returns the first answer."""
        req_hash = _request_hash(body)
        if idempotency_key:
            async with deps.sessions() as s:
                prior = await store.get_idempotent(s, body.tenant, idempotency_key)
            if prior is not None:
                return _replay(prior, req_hash)
        now = datetime.now(UTC)
        report, contact = _to_report(body, deps, now)
        query_code = secrets.token_hex(4).upper()
        try:
            async with deps.sessions() as s, s.begin():
                rid = None
                if contact is not None:
                    rid = await store.insert_contact(s, tenant=body.tenant, **contact)
                ticket_no = await store.next_ticket_no(s, body.tenant, now.astimezone(SHANGHAI).date())
                ticket, entry, events = domain.receive(report, ticket_id=uuid.uuid4(), ticket_no=ticket_no, now=now)
                bind(ticket_id=ticket.id, tenant=ticket.tenant)
                await store.insert_ticket(s, ticket, reporter_id=rid, query_code_hash=_hash_query_code(query_code))
                await store.add_history(s, ticket.id, entry, now)
                cid = getattr(request.state, "correlation_id", str(ticket.id))
                await outbox_mod.add(
                    s,
                    store.outbox,
                    [
                        Envelope(
                            source="intake", tenant=ticket.tenant, subject=str(ticket.id), correlation_id=cid, data=e
                        )
                        for e in events
                    ],
                )
                answer = ReportAccepted(
                    ticket_id=ticket.id,
                    ticket_no=ticket.ticket_no,
                    query_code=query_code,
                    status=ticket.status.value,
                    received_at=now,
                )
                if idempotency_key:
                    await store.put_idempotent(
                        s, body.tenant, idempotency_key, req_hash, 201, answer.model_dump(mode="json")
                    )
        except IntegrityError:
            if not idempotency_key:
                raise
            # A concurrent retry with the same key won the race; its answer is the answer.
            async with deps.sessions() as s:
                prior = await store.get_idempotent(s, body.tenant, idempotency_key)
            if prior is None:
                raise
            return _replay(prior, req_hash)
        deps.metrics_received(ticket.channel)
        return answer

    @router.get("/tenants/{tenant}/tickets/{ref}", response_model=TicketOut)
    async def get_ticket(tenant: str, ref: str, deps: DepsDep) -> Any:
        """A ticket by id or 工单编号, as a handling unit may see it (reporter masked or withheld)."""
        async with deps.sessions() as s:
            t = await store.find_ticket(s, tenant, ref)
        if t is None:
            raise ApiError(404, "ticket_not_found", "工单不存在")
        return _ticket_out(t)

    @router.get("/tenants/{tenant}/tickets/{ref}/history", response_model=list[HistoryOut])
    async def get_history(tenant: str, ref: str, deps: DepsDep) -> Any:
        """The 流转记录 of a ticket, oldest first."""
        async with deps.sessions() as s:
            t = await store.find_ticket(s, tenant, ref)
            if t is None:
                raise ApiError(404, "ticket_not_found", "工单不存在")
            rows = await store.history(s, t.id)
        return [
            HistoryOut(
                at=r.at, action=r.action, from_status=r.from_status, to_status=r.to_status, actor=r.actor, note=r.note
            )
            for r in rows
        ]

    @router.get("/tenants/{tenant}/progress/{ticket_no}")
    async def progress(
        tenant: str,
        ticket_no: str,
        deps: DepsDep,
        query_code: Annotated[str, Header(alias="X-Query-Code", min_length=4, max_length=32)],
    ) -> Any:
        """Citizen progress query (进度查询) with the 查询码 the report returned."""
        async with deps.sessions() as s:
            t = await store.find_ticket(s, tenant, ticket_no)
            ok = t is not None and secrets.compare_digest(
                await store.get_query_code_hash(s, t.id) or "", _hash_query_code(query_code.upper())
            )
            rows = await store.history(s, t.id) if ok and t else []
        if not ok or t is None:
            # One answer for both cases so the endpoint cannot be used to probe ticket numbers.
            raise ApiError(404, "ticket_not_found", "工单编号或查询码不正确")
        return {
            "ticket_no": t.ticket_no,
            "status": t.status.value,
            "steps": [{"at": r.at.isoformat(), "note": r.note} for r in rows],
        }

    return router


def _replay(prior: Any, req_hash: str) -> JSONResponse:
    if prior.request_hash != req_hash:
        raise ApiError(422, "idempotency_key_reused", "Idempotency-Key 已用于内容不同的请求")
    return JSONResponse(prior.response, status_code=prior.status_code, headers={"Idempotent-Replayed": "true"})


def _to_report(body: CitizenReportIn, deps: Deps, now: datetime) -> tuple[domain.Report, dict[str, Any] | None]:
    if body.location is None and not body.address:
        raise ApiError(422, "location_required", "请提供位置（坐标）或地址")
    location = None
    if body.location is not None:
        try:
            lon, lat = to_wgs84(body.location.lon, body.location.lat, body.location.crs)
        except ValueError as exc:
            raise ApiError(422, "invalid_location", f"坐标无效：{exc}") from exc
        location = domain.Location(
            lon=lon,
            lat=lat,
            crs_original=body.location.crs,
            lon_original=body.location.lon,
            lat_original=body.location.lat,
        )
    contact: dict[str, Any] | None = None
    reporter = ReporterRef(anonymous=body.anonymous, confidential=body.confidential)
    if body.phone and not body.anonymous:
        try:
            phone = normalize_phone(body.phone)
        except InvalidPhone as exc:
            raise ApiError(422, "invalid_phone", str(exc)) from exc
        contact = {
            "phone_sealed": deps.pii.seal(phone, "reporter-phone"),
            "phone_hash": lookup_hash(phone, deps.pii.hmac_key()),
            "openid_sealed": deps.pii.seal(body.openid, "reporter-openid") if body.openid else None,
            "confidential": body.confidential,
        }
        reporter = ReporterRef(
            contact_token=deps.transit.seal(phone, REPORTER_CONTACT),
            masked_phone=mask_phone(phone),
            anonymous=False,
            confidential=body.confidential,
        )
    elif body.anonymous and body.phone:
        raise ApiError(422, "anonymous_with_phone", "匿名反映时请勿填写手机号")
    if body.reported_at and body.reported_at > now:
        raise ApiError(422, "reported_in_future", "reported_at 不能晚于当前时间")
    report = domain.Report(
        tenant=body.tenant,
        channel="citizen",
        category_code=body.category_code,
        description=body.description,
        demand_type=body.demand_type,
        priority=body.priority,
        location=location,
        address=body.address,
        area_code=body.area_code,
        reported_at=body.reported_at or now,
        reporter=reporter,
    )
    return report, contact


def _ticket_out(t: domain.Ticket) -> TicketOut:
    loc = None
    if t.location:
        loc = {
            "lon": t.location.lon,
            "lat": t.location.lat,
            "crs": "wgs84",
            "original": {
                "lon": t.location.lon_original,
                "lat": t.location.lat_original,
                "crs": t.location.crs_original,
            },
        }
    return TicketOut(
        ticket_id=t.id,
        ticket_no=t.ticket_no,
        tenant=t.tenant,
        status=t.status.value,
        channel=t.channel,
        category_code=t.category_code,
        priority=t.priority,
        description=t.description,
        location=loc,
        address=t.address,
        reporter=domain.unit_view_of_reporter(t.reporter, t.demand_type).model_copy(update={"contact_token": None}),
        unit_code=t.unit_code,
        grid_code=t.grid_code,
        sla_policy_key=t.sla_policy_key,
        received_at=t.received_at,
        dispatched_at=t.dispatched_at,
    )
