"""intake's HTTP API: citizen reports in, ticket status and history out."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.http import ApiError
from gridline_boot.logging import bind
from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import DemandType, OrderOrigin, Priority, ReporterRef
from gridline_geo.crs import to_wgs84
from gridline_pii import InvalidPhone, caller_hash, lookup_hash, mask_phone, normalize_phone

from . import domain, store
from .access import DepsDep, limit_citizen, signed_integration
from .api_staff import _cursor, _parse_cursor
from .deps import Deps
from .inputs import Input, RefPath, TenantPath
from .photos import Photo, read_photos, save_photos
from .ticket_numbers import TicketNumbers

TENANT_RE = re.compile(r"^\d{6}$")
SHANGHAI = ZoneInfo("Asia/Shanghai")
REPORTER_CONTACT = "reporter-contact"  # purpose bound into transit tokens


class LocationIn(Input):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "gcj02", "bd09"] = Field(
        default="gcj02", description="坐标系：wx.getLocation 默认返回 gcj02；百度地图为 bd09"
    )


class CitizenReportIn(Input):
    """随手拍 citizen report, as a WeChat mini-program backend submits it."""

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
    photo_count: int = 0


class FeedItem(BaseModel):
    ref: str = Field(description="不可逆的公示编号（不是工单编号）")
    category_code: str
    status: str
    status_zh: str
    lon: float | None
    lat: float | None
    area_code: str | None
    received_on: str
    closed_on: str | None


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None


def hash_query_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _request_hash(body: CitizenReportIn, photo_hashes: list[str] | None = None) -> str:
    doc = {"body": body.model_dump(mode="json"), "photos": photo_hashes or []}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


async def admit(
    s: AsyncSession,
    report: domain.Report,
    contact: dict[str, Any] | None,
    query_code: str,
    now: datetime,
    correlation_id: str | None,
    *,
    source_hash: str | None = None,
    numbers: TicketNumbers | None = None,
) -> domain.Ticket:
    """A new ticket: sealed contact, 工单编号, ticket row, history and ``ticket.received``, in ``s``'s transaction.

    ``numbers`` (the composition root's block allocator) keeps the tenant's counter row out of this
    transaction; without it the number is taken inside it, which serialises a tenant's reports.
    """
    day = now.astimezone(SHANGHAI).date()
    ticket_no = await numbers.next(report.tenant, day) if numbers else await store.next_ticket_no(s, report.tenant, day)
    ticket, entry, events = domain.receive(report, ticket_id=uuid.uuid4(), ticket_no=ticket_no, now=now)
    bind(ticket_id=ticket.id, tenant=ticket.tenant)
    cid = correlation_id or str(ticket.id)
    envelopes: list[Envelope[Any]] = [
        Envelope(source="intake", tenant=ticket.tenant, subject=str(ticket.id), correlation_id=cid, data=e)
        for e in events
    ]
    await store.insert_new_ticket(
        s,
        ticket,
        entry,
        envelopes,
        at=now,
        contact=contact,
        query_code_hash=hash_query_code(query_code),
        source=report.origin.integration if report.origin else None,
        external_id=report.origin.external_id if report.origin else None,
        source_hash=source_hash,
        site=report.site.model_dump() if report.site else None,
    )
    return ticket


def new_query_code() -> str:
    return secrets.token_hex(4).upper()


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["intake"])

    @router.post("/reports", status_code=201, response_model=ReportAccepted)
    async def submit_report(
        body: CitizenReportIn,
        request: Request,
        deps: DepsDep,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        x_api_key: Annotated[str | None, Header(max_length=64)] = None,
        x_timestamp: Annotated[str | None, Header(max_length=20)] = None,
        x_nonce: Annotated[str | None, Header(max_length=64)] = None,
        x_signature: Annotated[str | None, Header(max_length=128)] = None,
    ) -> Any:
        """Submit a citizen report (随手拍). Retrying with the same `Idempotency-Key` returns the first answer.

        A mini-program backend may sign the request like any integration (`X-Api-Key`, `X-Timestamp`,
        `X-Nonce`, `X-Signature`): the ticket is then its own (it may read it back) and counts
        against its rate limit. Unsigned submissions are accepted and limited per phone, per openid and
        per client IP (429 with Retry-After).
        """
        source = None
        if x_api_key:
            p = await signed_integration(request, deps, x_api_key, x_timestamp, x_nonce, x_signature)
            if "submit" not in p.scopes or p.tenant != body.tenant:
                raise ApiError(403, "scope_missing", "该接入方不能为此地区提交工单")
            source = p.id
        return await _submit(body, [], request, deps, idempotency_key, source)

    @router.post("/reports/with-photos", status_code=201, response_model=ReportAccepted)
    async def submit_report_with_photos(
        request: Request,
        deps: DepsDep,
        report: Annotated[str, Form(max_length=20_000, description="CitizenReportIn 的 JSON")],
        photos: Annotated[list[UploadFile], File(description="照片：JPEG/PNG/WebP/HEIC，按内容校验")],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        """Submit a citizen report with photos (multipart/form-data: `report` JSON + `photos` files)."""
        try:
            body = CitizenReportIn.model_validate_json(report)
        except ValidationError as exc:
            details = [
                {"field": ".".join(map(str, e["loc"])), "problem": e["msg"], "type": e["type"]} for e in exc.errors()
            ]
            raise ApiError(422, "invalid_request", "请求参数校验失败", details) from exc
        checked = await read_photos(photos, max_bytes=deps.max_photo_bytes, max_count=deps.max_photos)
        return await _submit(body, checked, request, deps, idempotency_key)

    async def _submit(
        body: CitizenReportIn,
        photos: list[Photo],
        request: Request,
        deps: Deps,
        idempotency_key: str | None,
        source: str | None = None,
    ) -> Any:
        req_hash = _request_hash(body, [p.sha256 for p in photos])
        if idempotency_key:
            async with deps.sessions() as s:
                prior = await store.get_idempotent(s, body.tenant, idempotency_key)
            if prior is not None:
                return _replay(prior, req_hash)
        now = datetime.now(UTC)
        report, contact = _to_report(body, deps, now)
        if source is not None:
            # Its own id for the report, so it can be told apart and read back (read_own).
            ref = idempotency_key or str(uuid.uuid4())
            report = replace(report, origin=OrderOrigin(integration=source, external_id=ref[:64]))
        await limit_citizen(
            deps,
            request,
            phone_hash=contact["phone_hash"] if contact else None,
            openid=body.openid,
            signed=source is not None,
            now=now,
        )
        query_code = new_query_code()
        try:
            async with deps.sessions() as s, s.begin():
                cid = getattr(request.state, "correlation_id", None)
                ticket = await admit(s, report, contact, query_code, now, cid, numbers=deps.ticket_numbers)
                if photos:
                    await save_photos(
                        s, deps.storage, tenant=ticket.tenant, ticket_id=ticket.id, purpose="report", photos=photos
                    )
                answer = ReportAccepted(
                    ticket_id=ticket.id,
                    ticket_no=ticket.ticket_no,
                    query_code=query_code,
                    status=ticket.status.value,
                    received_at=now,
                    photo_count=len(photos),
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

    @router.get("/tenants/{tenant}/progress/{ticket_no}")
    async def progress(
        tenant: TenantPath,
        ticket_no: RefPath,
        deps: DepsDep,
        query_code: Annotated[str, Header(alias="X-Query-Code", min_length=4, max_length=32)],
    ) -> Any:
        """Citizen progress query (进度查询) with the 查询码 the report returned."""
        async with deps.sessions() as s:
            t = await store.find_ticket(s, tenant, ticket_no)
            ok = t is not None and secrets.compare_digest(
                await store.get_query_code_hash(s, t.id) or "", hash_query_code(query_code.upper())
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

    @router.get("/tenants/{tenant}/public/feed", response_model=FeedPage)
    async def public_feed(
        tenant: TenantPath,
        deps: DepsDep,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Any:
        """Anonymised public feed (随手拍 公示): category, status, coarse place (~100 m), dates.

        Never a description, address, reporter or unit; never a 举报 or a confidential report.
        """
        after = _parse_cursor(cursor) if cursor else None
        async with deps.sessions() as s:
            rows = await store.public_feed(s, tenant, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return FeedPage(
            items=[
                FeedItem(
                    ref=hashlib.sha256(f"{tenant}:{r.id}".encode()).hexdigest()[:12],
                    category_code=r.category_code,
                    status=r.status,
                    status_zh=domain.STATUS_ZH[domain.Status(r.status)],
                    lon=round(r.location["lon"], 3) if r.location else None,
                    lat=round(r.location["lat"], 3) if r.location else None,
                    area_code=r.area_code,
                    received_on=r.received_at.astimezone(SHANGHAI).date().isoformat(),
                    closed_on=r.closed_at.astimezone(SHANGHAI).date().isoformat() if r.closed_at else None,
                )
                for r in rows
            ],
            next_cursor=_cursor(rows[-1].received_at, rows[-1].id) if more and rows else None,
        )

    return router


def _replay(prior: Any, req_hash: str) -> JSONResponse:
    if prior.request_hash != req_hash:
        raise ApiError(422, "idempotency_key_reused", "Idempotency-Key 已用于内容不同的请求")
    return JSONResponse(prior.response, status_code=prior.status_code, headers={"Idempotent-Replayed": "true"})


def seal_contact(
    deps: Deps,
    phone_raw: str,
    *,
    tenant: str,
    confidential: bool,
    openid: str | None = None,
    name: str | None = None,
) -> tuple[dict[str, Any], ReporterRef]:
    """Contact data sealed at rest, and the reporter as events may carry it (transit token + mask)."""
    try:
        phone = normalize_phone(phone_raw)
    except InvalidPhone as exc:
        raise ApiError(422, "invalid_phone", str(exc)) from exc
    contact = {
        "phone_sealed": deps.pii.seal(phone, "reporter-phone"),
        "phone_hash": lookup_hash(phone, deps.pii.hmac_key()),
        "openid_sealed": deps.pii.seal(openid, "reporter-openid") if openid else None,
        "name_sealed": deps.pii.seal(name, "reporter-name") if name else None,
        "confidential": confidential,
    }
    reporter = ReporterRef(
        contact_token=deps.transit.seal(phone, REPORTER_CONTACT),
        masked_phone=mask_phone(phone),
        anonymous=False,
        confidential=confidential,
        caller_hash=caller_hash(phone, tenant, deps.pii.hmac_key()),  # routing's "same caller" (一事多报)
    )
    return contact, reporter


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
        contact, reporter = seal_contact(
            deps, body.phone, tenant=body.tenant, confidential=body.confidential, openid=body.openid
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
