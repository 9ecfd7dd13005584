"""Open311 GeoReport v2 server (one endpoint per tenant: ``/open311/v2/{tenant}/…``), JSON and XML.

Follows the frozen spec (reference/open311-and-peers.md §1): format by suffix, list resources as
top-level JSON arrays, errors as a list ``[{code, description}]`` with 400/403/404, ``api_key``
(the integration's secret, sent in the form) required only on POST, empty parameters treated as
absent, W3C datetimes with a zone. Our lifecycle maps onto ``open``/``closed`` with the Chinese
status and the latest step as ``status_notes``; ``expected_datetime`` is the SLA deadline.
FixMyStreet's ``servicerequestupdates`` extension: ``GET`` serves the 流转记录 as updates; ``POST``
takes a citizen's update to a request the same client created (a history note, never a state change:
the lifecycle is the platform's; a duplicate ``update_id`` is 400 "already exists", as FMS does).
``media_url`` on POST requests and updates is fetched later like a 12345 attachment
(:mod:`intake.attachments`) and published back as the request's ``media_url``. ``GET requests``
pages with ``page`` (from 1) and ``page_size`` (≤ 1000, default 1000: the spec's cap), the
Chicago/Austin extension, newest first.

Requests are ``realtime`` (the 工单编号 is returned at once), so no token is ever issued and
``GET tokens/{token}`` is always 404, as the spec says for an unknown token.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridline_boot.http import ApiError
from gridline_contracts.intake import OrderOrigin, ReporterRef

from . import domain, store
from .access import DepsDep
from .api import admit, new_query_code, seal_contact
from .attachments import queue_urls
from .auth import Integration
from .deps import Deps

SPEC = "http://wiki.open311.org/GeoReport_v2"
CLOSED = {"closed", "archived", "direct_closed", "rejected"}
MAX_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
MAX_MEDIA_URLS = 9
CITIZEN_UPDATE = "citizen_update"  # the history action of an update POSTed by an Open311 client
# Path values are checked in the handlers, so that a bad one is a spec error list, not a 422.
FmtPath = Annotated[str, Path()]
TenantPath = Annotated[str, Path(description="jurisdiction: the tenant's 6-digit code")]
IdPath = Annotated[str, Path()]


def load_catalogue(path: FsPath | None) -> list[dict[str, str]]:
    """The tenant's category catalogue as Open311 services (same codes as routing's 派单目录)."""
    src = path or FsPath(__file__).with_name("open311_services.json")
    items: list[dict[str, str]] = json.loads(src.read_text(encoding="utf-8"))
    return items


class Open311Error(Exception):
    def __init__(self, status: int, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.code = code or status


def _fmt(fmt: str, tenant: str | None = None) -> str:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, f"unsupported format: {fmt[:16]}")
    if tenant is not None and not (len(tenant) == 6 and tenant.isascii() and tenant.isdigit()):
        raise Open311Error(404, "jurisdiction not found")
    return fmt


def _id(v: str) -> str:
    """A path id that can be looked up (PostgreSQL text cannot hold NUL; ours are short)."""
    return v if len(v) <= 64 and "\x00" not in v else ""


def _xml_value(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _xml_value(el, k, v)
    elif isinstance(value, list):
        singular = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute", "values": "value"}.get(
            key, "item"
        )
        for v in value:
            _xml_value(el, singular, v)
    elif value is not None:
        el.text = str(value).lower() if isinstance(value, bool) else str(value)


def render(fmt: str, root: str, item: str | None, body: Any, status: int = 200) -> Response:
    """JSON (Spark convention: a list resource is a top-level array) or XML (no namespace)."""
    if fmt == "json":
        return Response(
            json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json; charset=utf-8"
        )
    top = ET.Element(root)
    if item is None:
        for k, v in body.items():
            _xml_value(top, k, v)
    else:
        for entry in body:
            _xml_value(top, item, entry)
    xml = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return Response(xml, status_code=status, media_type="text/xml; charset=utf-8")


def error_response(fmt: str, err: Open311Error) -> Response:
    body = [{"code": err.code, "description": err.description}]
    return render(fmt if fmt in ("json", "xml") else "json", "errors", "error", body, err.status)


def _w3c(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if dt else None


def _parse_dt(name: str, v: str | None) -> datetime | None:
    if not v:
        return None
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C datetime") from exc
    if dt.tzinfo is None:
        raise Open311Error(400, f"{name} must include a time zone")
    return dt


def _csv(v: str | None) -> list[str]:
    if v and "\x00" in v:
        raise Open311Error(400, "parameters must not contain NUL")
    return [x.strip() for x in (v or "").split(",") if x.strip()]


def _int(name: str, v: str | None, default: int, lo: int, hi: int) -> int:
    if not v:
        return default
    if not v.isdigit() or not lo <= int(v) <= hi:
        raise Open311Error(400, f"{name} must be an integer from {lo} to {hi}")
    return int(v)


def _media_urls(values: Sequence[str]) -> list[str]:
    urls = [u for u in values if u]
    if len(urls) > MAX_MEDIA_URLS:
        raise Open311Error(400, f"at most {MAX_MEDIA_URLS} media_url values")
    for u in urls:
        if not u.startswith("https://") or len(u) > 1000 or "\x00" in u:
            raise Open311Error(400, "media_url must be an https URL")
    return urls


async def _media(s: AsyncSession, rows: Sequence[Any]) -> dict[uuid.UUID, str]:
    """The first media_url a client gave for each Open311 request (the public photo it posted)."""
    ids = [r.id for r in rows if r.channel == "open311"]
    if not ids:
        return {}
    a = store.attachment
    got = await s.execute(
        select(a.c.ticket_id, a.c.source_url)
        .where(a.c.ticket_id.in_(ids), a.c.purpose == "report", a.c.source_url.isnot(None))
        .order_by(a.c.created_at, a.c.id)
    )
    out: dict[uuid.UUID, str] = {}
    for tid, url in got.all():
        out.setdefault(tid, url)
    return out


def _key(deps: Deps, tenant: str, api_key: str | None) -> Integration:
    for i in (deps.integrations or {}).values():
        if i.kind == "open311" and i.tenant == tenant and api_key and hmac.compare_digest(i.secret, api_key):
            return i
    raise Open311Error(403, "api_key is missing or invalid")


def build_open311_router(catalogue: Sequence[Mapping[str, str]]) -> APIRouter:
    router = APIRouter(prefix="/open311/v2/{tenant}", tags=["open311"])
    services = {s["service_code"]: s for s in catalogue}

    def request_out(r: Any, notes: str | None = None, media_url: str | None = None) -> dict[str, Any]:
        status = "closed" if r.status in CLOSED else "open"
        service = services.get(r.category_code, {})
        loc = r.location or {}
        public = r.channel == "open311"  # what was posted through Open311 was public from the start
        return {
            "service_request_id": r.ticket_no,
            "status": status,
            "status_notes": domain.STATUS_ZH[domain.Status(r.status)] + (f"：{notes}" if notes else ""),
            "service_name": service.get("service_name"),
            "service_code": r.category_code,
            "description": r.description if public else None,
            "agency_responsible": r.unit_code,
            "service_notice": None,
            "requested_datetime": _w3c(r.received_at),
            "updated_datetime": _w3c(r.closed_at if status == "closed" and r.closed_at else r.updated_at),
            "expected_datetime": _w3c(r.due_at or r.platform_due_at),
            "address": r.address if public else None,
            "address_id": None,
            "zipcode": None,
            "lat": round(loc["lat"], 5) if loc else None,
            "long": round(loc["lon"], 5) if loc else None,
            "media_url": media_url if public else None,
        }

    def public_rows() -> Any:
        t = store.ticket
        return select(t).where(
            t.c.demand_type.is_distinct_from("report"),
            t.c.reporter_view["confidential"].astext.is_distinct_from("true"),
        )

    @router.get("/discovery.{fmt}")
    async def discovery(tenant: TenantPath, fmt: FmtPath, request: Request) -> Response:
        """Open311 service discovery."""
        try:
            f = _fmt(fmt, tenant)
        except Open311Error as e:
            return error_response("json", e)
        body = {
            "changeset": "2026-11-22T00:00:00Z",
            "contact": "12345 政务服务便民热线",
            "key_service": "向平台管理员申请 api_key",
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": f"{str(request.base_url).rstrip('/')}/open311/v2/{tenant}",
                    "changeset": "2026-11-22T00:00:00Z",
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return render(f, "discovery", None, body)

    @router.get("/services.{fmt}")
    async def list_services(tenant: TenantPath, fmt: FmtPath) -> Response:
        """Service list, from the category catalogue."""
        try:
            f = _fmt(fmt, tenant)
        except Open311Error as e:
            return error_response("json", e)
        body = [
            {
                "service_code": s["service_code"],
                "service_name": s["service_name"],
                "description": s.get("description", s["service_name"]),
                "metadata": False,
                "type": "realtime",
                "keywords": s.get("keywords", ""),
                "group": s.get("group", ""),
            }
            for s in catalogue
        ]
        return render(f, "services", "service", body)

    @router.get("/services/{service_code}.{fmt}")
    async def service_definition(tenant: TenantPath, fmt: FmtPath, service_code: IdPath) -> Response:
        """Service definition (no extra attributes: every service has ``metadata=false``)."""
        try:
            f = _fmt(fmt, tenant)
            if service_code not in services:
                raise Open311Error(404, f"service_code {service_code[:32]} not found")
        except Open311Error as e:
            return error_response(fmt, e)
        return render(f, "service_definition", None, {"service_code": service_code, "attributes": []})

    @router.post("/requests.{fmt}")
    async def post_request(tenant: TenantPath, fmt: FmtPath, request: Request, deps: DepsDep) -> Response:
        """Create a service request (form-encoded; ``api_key`` required)."""
        try:
            f = _fmt(fmt, tenant)
            try:
                form = await request.form()
            except Exception as exc:  # malformed form bodies: Starlette raises several types
                raise Open311Error(400, "body must be application/x-www-form-urlencoded") from exc
            v = {k: str(x) for k, x in form.items() if isinstance(x, str) and x != "" and "\x00" not in x}
            integration = _key(deps, tenant, v.get("api_key"))
            media = _media_urls([str(x) for x in form.getlist("media_url") if isinstance(x, str)])
            code = v.get("service_code")
            if not code:
                raise Open311Error(400, "service_code is required")
            if code not in services:
                raise Open311Error(404, f"service_code {code} not found")
            lat, lon = v.get("lat"), v.get("long")
            if not ((lat and lon) or v.get("address_string") or v.get("address_id")):
                raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
            location = None
            if lat and lon:
                try:
                    flat, flon = float(lat), float(lon)
                except ValueError as exc:
                    raise Open311Error(400, "lat and long must be numbers") from exc
                if not (-90 <= flat <= 90 and -180 <= flon <= 180):
                    raise Open311Error(400, "lat/long out of range")
                location = domain.Location(flon, flat, "wgs84", flon, flat)  # the spec's lat/long are WGS84
            description = v.get("description", "")
            if len(description) > 4000 or len(description) < 2:
                raise Open311Error(400, "description must be 2 to 4000 characters")
            now = datetime.now(UTC)
            contact, reporter = None, ReporterRef(anonymous="phone" not in v)
            if v.get("phone"):
                name = " ".join(x for x in (v.get("last_name"), v.get("first_name")) if x) or None
                try:
                    contact, reporter = seal_contact(deps, v["phone"], tenant=tenant, confidential=False, name=name)
                except ApiError as exc:
                    raise Open311Error(400, exc.message) from exc
            report = domain.Report(
                tenant=tenant,
                channel="open311",
                category_code=code,
                description=description,
                demand_type=None,
                priority="normal",
                location=location,
                address=(v.get("address_string") or v.get("address_id") or "")[:500] or None,
                area_code=None,
                reported_at=now,
                reporter=reporter,
                origin=OrderOrigin(integration=integration.id, external_id=f"open311:{uuid.uuid4()}"),
            )
            async with deps.sessions() as s, s.begin():
                cid = getattr(request.state, "correlation_id", None)
                t = await admit(s, report, contact, new_query_code(), now, cid, numbers=deps.ticket_numbers)
                await queue_urls(s, tenant=tenant, ticket_id=t.id, urls=media, now=now)
            deps.metrics_received("open311")
            body = [
                {
                    "service_request_id": t.ticket_no,
                    "service_notice": "已受理，请凭工单编号查询进度",
                    "account_id": None,
                }
            ]
            return render(f, "service_requests", "request", body)
        except Open311Error as e:
            return error_response(fmt, e)

    @router.get("/requests.{fmt}")
    async def get_requests(
        tenant: TenantPath,
        fmt: FmtPath,
        deps: DepsDep,
        service_request_id: str | None = None,
        service_code: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        status: str | None = None,
        page: str | None = None,
        page_size: str | None = None,
    ) -> Response:
        """Requests with every filter of the spec; ``service_request_id`` overrides all the others.
        Paging (extension): ``page`` from 1, ``page_size`` up to 1000, newest first."""
        try:
            f = _fmt(fmt, tenant)
            size = _int("page_size", page_size, MAX_REQUESTS, 1, MAX_REQUESTS)
            offset = (_int("page", page, 1, 1, 1_000_000) - 1) * size
            t = store.ticket
            stmt = public_rows().where(t.c.tenant == tenant)
            ids = _csv(service_request_id)
            if ids:
                stmt = stmt.where(t.c.ticket_no.in_(ids[:MAX_REQUESTS]))
            else:
                start, end = _parse_dt("start_date", start_date), _parse_dt("end_date", end_date)
                end = end or datetime.now(UTC)
                start = start or end - MAX_WINDOW
                if end - start > MAX_WINDOW or start > end:
                    raise Open311Error(400, "the date range must be at most 90 days, start before end")
                stmt = stmt.where(t.c.received_at >= start, t.c.received_at <= end)
                codes = _csv(service_code)
                if codes:
                    stmt = stmt.where(t.c.category_code.in_(codes))
                wanted = set(_csv(status))
                if wanted - {"open", "closed"}:
                    raise Open311Error(400, "status must be open and/or closed")
                if wanted == {"open"}:
                    stmt = stmt.where(t.c.status.notin_(CLOSED))
                elif wanted == {"closed"}:
                    stmt = stmt.where(t.c.status.in_(CLOSED))
            async with deps.sessions() as s:
                stmt = stmt.order_by(t.c.received_at.desc(), t.c.id.desc()).limit(size).offset(offset)
                rows = (await s.execute(stmt)).all()
                media = await _media(s, rows)
            body = [request_out(r, media_url=media.get(r.id)) for r in rows]
            return render(f, "service_requests", "request", body)
        except Open311Error as e:
            return error_response(fmt, e)

    @router.get("/requests/{service_request_id}.{fmt}")
    async def get_request(tenant: TenantPath, fmt: FmtPath, deps: DepsDep, service_request_id: IdPath) -> Response:
        """One request (still an array of one in JSON), with its latest step as status notes."""
        try:
            f = _fmt(fmt, tenant)
            t = store.ticket
            async with deps.sessions() as s:
                row = (
                    await s.execute(public_rows().where(t.c.tenant == tenant, t.c.ticket_no == _id(service_request_id)))
                ).first()
                steps = await store.history(s, row.id) if row else []
                media = await _media(s, [row]) if row else {}
            if row is None:
                raise Open311Error(404, f"service_request_id {service_request_id[:64]} not found")
            out = request_out(row, steps[-1].note if steps else None, media.get(row.id))
            return render(f, "service_requests", "request", [out])
        except Open311Error as e:
            return error_response(fmt, e)

    @router.get("/tokens/{token}.{fmt}")
    async def get_token(tenant: TenantPath, fmt: FmtPath, token: IdPath) -> Response:
        """Tokens are never issued (every service is realtime): always 404."""
        return error_response(fmt, Open311Error(404, f"token {token[:64]} not found"))

    @router.get("/servicerequestupdates.{fmt}")
    async def updates(
        tenant: TenantPath,
        fmt: FmtPath,
        deps: DepsDep,
        api_key: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> Response:
        """FixMyStreet's extension: every lifecycle step in the window as a request update."""
        try:
            f = _fmt(fmt, tenant)
            _key(deps, tenant, api_key)
            end = _parse_dt("end_date", end_date) or datetime.now(UTC)
            start = _parse_dt("start_date", start_date) or end - timedelta(days=1)
            if end - start > MAX_WINDOW or start > end:
                raise Open311Error(400, "the date range must be at most 90 days, start before end")
            h = store.ticket_history
            sub = public_rows().subquery()
            stmt = (
                select(h.c.id, h.c.at, h.c.to_status, h.c.note, sub.c.ticket_no)
                .join(sub, sub.c.id == h.c.ticket_id)
                .where(sub.c.tenant == tenant, h.c.at >= start, h.c.at <= end, h.c.action != CITIZEN_UPDATE)
                .order_by(h.c.id)
                .limit(MAX_REQUESTS)
            )
            async with deps.sessions() as s:
                rows = (await s.execute(stmt)).all()
            body = [
                {
                    "update_id": str(r.id),
                    "service_request_id": r.ticket_no,
                    "status": "CLOSED" if r.to_status in CLOSED else "OPEN",
                    "external_status_code": r.to_status,
                    "updated_datetime": _w3c(r.at),
                    "description": r.note,
                    "media_url": None,
                }
                for r in rows
            ]
            return render(f, "service_request_updates", "request_update", body)
        except Open311Error as e:
            return error_response(fmt, e)

    @router.post("/servicerequestupdates.{fmt}")
    async def post_update(tenant: TenantPath, fmt: FmtPath, request: Request, deps: DepsDep) -> Response:
        """FixMyStreet's extension: a citizen's update (comment, photos) to a request this client created.

        Required: ``api_key``, ``service_request_id``, ``update_id`` (the client's), ``updated_datetime``,
        ``status``, ``description``. Recorded as a 流转记录 note; the status is the citizen's view and
        never moves the ticket. Answer: our ``update_id``.
        """
        try:
            f = _fmt(fmt, tenant)
            try:
                form = await request.form()
            except Exception as exc:  # malformed form bodies: Starlette raises several types
                raise Open311Error(400, "body must be application/x-www-form-urlencoded") from exc
            v = {k: str(x) for k, x in form.items() if isinstance(x, str) and x != "" and "\x00" not in x}
            integration = _key(deps, tenant, v.get("api_key"))
            for name in ("service_request_id", "update_id", "updated_datetime", "status", "description"):
                if not v.get(name):
                    raise Open311Error(400, f"{name} is required")
            _parse_dt("updated_datetime", v["updated_datetime"])
            if len(v["update_id"]) > 64 or len(v["status"]) > 40:
                raise Open311Error(400, "update_id or status too long")
            if not 1 <= len(v["description"]) <= 4000:
                raise Open311Error(400, "description must be 1 to 4000 characters")
            media = _media_urls([str(x) for x in form.getlist("media_url") if isinstance(x, str)])
            key = f"open311-update:{integration.id}:{v['update_id']}"
            h = store.ticket_history
            try:
                async with deps.sessions() as s, s.begin():
                    t = await store.find_ticket(s, tenant, v["service_request_id"][:64], for_update=True)
                    if t is None or t.source != integration.id:
                        raise Open311Error(404, f"service_request_id {v['service_request_id']} not found")
                    if await store.get_idempotent(s, tenant, key) is not None:
                        raise Open311Error(400, f"update_id {v['update_id']} already exists")
                    note = f"市民补充（{integration.id} 更新 {v['update_id']}，状态 {v['status']}）：{v['description']}"
                    hid = (
                        await s.execute(
                            h.insert()
                            .values(
                                ticket_id=t.id,
                                at=datetime.now(UTC),
                                action=CITIZEN_UPDATE,
                                from_status=t.status.value,
                                to_status=t.status.value,
                                actor=f"integration:{integration.id}",
                                actor_role="citizen",
                                note=note,
                            )
                            .returning(h.c.id)
                        )
                    ).scalar_one()
                    await queue_urls(s, tenant=tenant, ticket_id=t.id, urls=media, now=datetime.now(UTC))
                    await store.put_idempotent(s, tenant, key, "", 200, {"update_id": str(hid)})
            except IntegrityError as exc:  # the same update_id raced itself
                raise Open311Error(400, f"update_id {v['update_id']} already exists") from exc
            return render(f, "service_request_updates", "request_update", [{"update_id": str(hid)}])
        except Open311Error as e:
            return error_response(fmt, e)

    return router
