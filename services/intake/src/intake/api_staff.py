"""Staff and integration endpoints: unit actions, platform decisions, worklist, detail, contact views.

Every route checks the tenant in the path against the caller's, and a unit sees and acts only on
tickets that are with it (主办 or 协办 for reading, 主办 for acting): any other ticket is 404, so
ticket numbers cannot be probed across units.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from gridline_boot.http import ApiError
from gridline_boot.logging import bind
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import ReporterRef, Satisfaction

from . import domain, handlers, store
from .access import CallerDep, DepsDep
from .auth import Principal
from .domain import Actor, Decision, Ticket
from .inputs import Input, RefPath, TenantPath
from .photos import describe, read_photos, save_photos

CODE = r"^[0-9A-Za-z_.-]+$"
READ_ALL_ROLES = frozenset({"platform", "dispatcher", "supervisor", "hotline"})


class Strict(Input):
    pass


class SignIn(Strict):
    pass


class ReturnIn(Strict):
    reason_code: Literal["wrong_territory", "not_our_duty", "unclear_ownership", "legal_procedure", "duplicate"]
    basis: str = Field(min_length=4, max_length=2000, description="依据：法规、三定职责或权责清单条目")


class ExtensionIn(Strict):
    working_days: int = Field(ge=1, le=30)
    reason: str = Field(min_length=4, max_length=2000)


class ReplyIn(Strict):
    text: str = Field(min_length=4, max_length=4000, description="办理结果")
    attachment_ids: list[uuid.UUID] = Field(default=[], max_length=9)


class ReviewIn(Strict):
    approved: bool
    comment: str = Field(default="", max_length=2000)


class ExtensionReviewIn(Strict):
    approved: bool
    working_days: int | None = Field(default=None, ge=1, le=30, description="批准天数，缺省为申请天数")


class CallbackIn(Strict):
    satisfaction: Satisfaction
    resolved: bool | None = None


class ReasonIn(Strict):
    reason: str = Field(min_length=2, max_length=2000)


class EmptyIn(Strict):
    pass


class RejectIn(Strict):
    reason_code: Literal[
        "litigation_or_petition", "other_jurisdiction", "not_government_matter", "state_secret", "malicious"
    ]
    reason: str = Field(min_length=2, max_length=2000, description="告知来电人的法定途径")


class DirectCloseIn(Strict):
    answer: str = Field(min_length=2, max_length=4000)


class ContactViewIn(Strict):
    reason: str = Field(min_length=4, max_length=500, description="查看原因（如：回访来电人），记入审计")


class ActionOut(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str
    status: str
    version: int
    events: list[str]


class HistoryOut(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    actor_role: str | None = None
    note: str


class TicketOut(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str
    tenant: TenantPath
    status: str
    status_zh: str
    channel: str
    category_code: str
    demand_type: str | None
    priority: str
    description: str
    location: dict[str, Any] | None
    address: str | None
    reporter: ReporterRef
    unit_code: str | None
    co_unit_codes: list[str]
    grid_code: str | None
    sla_policy_key: str | None
    sla_colour: str
    received_at: datetime
    dispatched_at: datetime | None
    accepted_at: datetime | None
    due_at: datetime | None
    platform_due_at: datetime | None
    extension_count: int
    redo_count: int
    merge_parent_id: uuid.UUID | None
    history: list[HistoryOut] | None = None


class WorklistItem(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str
    status: str
    category_code: str
    priority: str
    unit_code: str | None
    grid_code: str | None
    sla_colour: str
    due_at: datetime | None
    received_at: datetime


class WorklistPage(BaseModel):
    items: list[WorklistItem]
    next_cursor: str | None = Field(description="下一页游标；为空表示没有更多")


class ContactOut(BaseModel):
    ticket_no: str
    phone: str | None
    openid: str | None
    audited_at: datetime


class ContactViewOut(BaseModel):
    at: datetime
    actor: str
    actor_role: str
    unit_code: str | None
    reason: str
    fields: list[str]


def ticket_out(t: Ticket, history: list[Any] | None = None) -> TicketOut:
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
        status_zh=domain.STATUS_ZH[t.status],
        channel=t.channel,
        category_code=t.category_code,
        demand_type=t.demand_type,
        priority=t.priority,
        description=t.description,
        location=loc,
        address=t.address,
        # Never the sealed token: it is for notify only. Masked or nothing (confidential, 举报).
        reporter=domain.unit_view_of_reporter(t.reporter, t.demand_type).model_copy(update={"contact_token": None}),
        unit_code=t.unit_code,
        co_unit_codes=list(t.co_unit_codes),
        grid_code=t.grid_code,
        sla_policy_key=t.sla_policy_key,
        sla_colour=t.sla_colour,
        received_at=t.received_at,
        dispatched_at=t.dispatched_at,
        accepted_at=t.accepted_at,
        due_at=t.due_at,
        platform_due_at=t.platform_due_at,
        extension_count=t.extension_count,
        redo_count=t.redo_count,
        merge_parent_id=t.merge_parent_id,
        history=[history_out(r) for r in history] if history is not None else None,
    )


def history_out(r: Any) -> HistoryOut:
    return HistoryOut(
        at=r.at,
        action=r.action,
        from_status=r.from_status,
        to_status=r.to_status,
        actor=r.actor,
        actor_role=r.actor_role,
        note=r.note,
    )


def may_read(p: Principal, t: Ticket) -> bool:
    if p.tenant != t.tenant:
        return False
    if p.kind == "integration":
        # An integration reads what it submitted, or — acting as a unit — that unit's tickets.
        if "act_as_unit" in p.scopes and p.unit_code:
            return p.unit_code == t.unit_code or p.unit_code in t.co_unit_codes
        return "read_own" in p.scopes and t.source == p.id
    if p.role in READ_ALL_ROLES:
        return True
    return p.unit_code is not None and (p.unit_code == t.unit_code or p.unit_code in t.co_unit_codes)


async def visible_ticket(deps: Any, s: Any, p: Principal, tenant: str, ref: str, *, for_update: bool = False) -> Ticket:
    t = await store.find_ticket(s, tenant, ref, for_update=for_update)
    if t is None or not may_read(p, t):
        raise ApiError(404, "ticket_not_found", "工单不存在")
    return t


def _cursor(received_at: datetime, tid: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{received_at.isoformat()}|{tid}".encode()).decode()


def _parse_cursor(c: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, _, tid = base64.urlsafe_b64decode(c.encode()).decode().partition("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(tid)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_cursor", "分页游标无效") from exc


def build_staff_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["staff"])

    async def execute(
        request: Request,
        deps: Any,
        p: Principal,
        tenant: TenantPath,
        ref: RefPath,
        decide: Callable[[Ticket, Actor, datetime], Decision],
    ) -> ActionOut:
        now = datetime.now(UTC)
        cid = getattr(request.state, "correlation_id", None)
        async with deps.sessions() as s, s.begin():
            t = await visible_ticket(deps, s, p, tenant, ref, for_update=True)
            bind(ticket_id=t.id, tenant=t.tenant)
            try:
                decision = decide(t, p.actor, now)
            except domain.ActorRefused as exc:
                if exc.code == "not_your_ticket":
                    raise ApiError(404, "ticket_not_found", "工单不存在") from exc
                raise ApiError(403, exc.code, exc.message, exc.details) from exc
            except domain.TransitionRefused as exc:
                raise ApiError(exc.status, exc.code, exc.message, exc.details) from exc

            def envelope(e: EventData) -> Envelope[Any]:
                return Envelope(
                    source="intake", tenant=t.tenant, subject=str(t.id), correlation_id=cid or str(t.id), data=e
                )

            await handlers.save_decision(s, t, decision, now, envelope_for=envelope)
        return ActionOut(
            ticket_id=t.id,
            ticket_no=t.ticket_no,
            status=decision.ticket.status.value,
            version=decision.ticket.version,
            events=[type(e).TYPE for e in decision.events],
        )

    # ---- unit actions ------------------------------------------------------------------------

    @router.post("/tickets/{ref}/sign", response_model=ActionOut)
    async def sign(
        tenant: TenantPath, ref: RefPath, body: SignIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """签收: the handling unit takes the ticket."""
        return await execute(request, deps, p, tenant, ref, lambda t, a, now: domain.sign(t, a, now))

    @router.post("/tickets/{ref}/return-request", response_model=ActionOut)
    async def request_return(
        tenant: TenantPath, ref: RefPath, body: ReturnIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """退单申请: not this unit's duty, with a reason code and its basis, inside the return window."""
        return await execute(
            request,
            deps,
            p,
            tenant,
            ref,
            lambda t, a, now: domain.request_return(t, a, body.reason_code, body.basis, now, deps.rules),
        )

    @router.post("/tickets/{ref}/extension-request", response_model=ActionOut)
    async def request_extension(
        tenant: TenantPath, ref: RefPath, body: ExtensionIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """延期申请: before the deadline, within the tenant's limits."""
        return await execute(
            request,
            deps,
            p,
            tenant,
            ref,
            lambda t, a, now: domain.request_extension(t, a, body.working_days, body.reason, now, deps.rules),
        )

    @router.post("/tickets/{ref}/reply", response_model=ActionOut)
    async def reply(
        tenant: TenantPath, ref: RefPath, body: ReplyIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """回复: the unit's 办理结果 (text, and photos uploaded before to `/attachments`)."""
        if body.attachment_ids:
            async with deps.sessions() as s:
                t = await visible_ticket(deps, s, p, tenant, ref)
                rows = await store.attachments(s, t.id, purpose="reply")
            unknown = set(body.attachment_ids) - {r.id for r in rows}
            if unknown:
                raise ApiError(422, "unknown_attachment", "附件不属于该工单", {"ids": sorted(map(str, unknown))})
        return await execute(
            request,
            deps,
            p,
            tenant,
            ref,
            lambda t, a, now: domain.reply(t, a, body.text, len(body.attachment_ids), now),
        )

    # ---- platform decisions ------------------------------------------------------------------

    @router.post("/tickets/{ref}/extension-review", response_model=ActionOut)
    async def review_extension(
        tenant: TenantPath, ref: RefPath, body: ExtensionReviewIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """延期审批 by the 12345 platform."""
        return await execute(
            request,
            deps,
            p,
            tenant,
            ref,
            lambda t, a, now: domain.review_extension(t, a, body.approved, body.working_days, now),
        )

    @router.post("/tickets/{ref}/reply-review", response_model=ActionOut)
    async def review_reply(
        tenant: TenantPath, ref: RefPath, body: ReviewIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """回复审核: approve (→ 待回访) or send back to the unit."""
        return await execute(
            request, deps, p, tenant, ref, lambda t, a, now: domain.review_reply(t, a, body.approved, body.comment, now)
        )

    @router.post("/tickets/{ref}/callback", response_model=ActionOut)
    async def callback(
        tenant: TenantPath, ref: RefPath, body: CallbackIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """回访结果: 满意/基本满意 closes the ticket; 不满意 waits for 重办 or a close decision."""
        return await execute(
            request,
            deps,
            p,
            tenant,
            ref,
            lambda t, a, now: domain.record_callback(t, a, body.satisfaction, body.resolved, now),
        )

    @router.post("/tickets/{ref}/redo", response_model=ActionOut)
    async def redo(
        tenant: TenantPath, ref: RefPath, body: ReasonIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """重办 after an unsatisfied callback."""
        return await execute(
            request, deps, p, tenant, ref, lambda t, a, now: domain.redo(t, a, body.reason, now, deps.rules)
        )

    @router.post("/tickets/{ref}/close", response_model=ActionOut)
    async def close(
        tenant: TenantPath, ref: RefPath, body: ReasonIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """办结 by platform decision (caller unreachable, or 重办 exhausted)."""
        return await execute(request, deps, p, tenant, ref, lambda t, a, now: domain.close(t, a, body.reason, now))

    @router.post("/tickets/{ref}/archive", response_model=ActionOut)
    async def archive(
        tenant: TenantPath, ref: RefPath, body: EmptyIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """归档 once the evaluation window is over."""
        return await execute(request, deps, p, tenant, ref, lambda t, a, now: domain.archive(t, a, now, deps.rules))

    @router.post("/tickets/{ref}/reopen", response_model=ActionOut)
    async def reopen(
        tenant: TenantPath, ref: RefPath, body: ReasonIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """重新交办 a closed ticket to its unit, within the reopen window."""
        return await execute(
            request, deps, p, tenant, ref, lambda t, a, now: domain.reopen(t, a, body.reason, now, deps.rules)
        )

    @router.post("/tickets/{ref}/reject", response_model=ActionOut)
    async def reject(
        tenant: TenantPath, ref: RefPath, body: RejectIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """不予受理 before dispatch."""
        return await execute(
            request, deps, p, tenant, ref, lambda t, a, now: domain.reject(t, a, body.reason_code, body.reason, now)
        )

    @router.post("/tickets/{ref}/direct-close", response_model=ActionOut)
    async def direct_close(
        tenant: TenantPath, ref: RefPath, body: DirectCloseIn, request: Request, deps: DepsDep, p: CallerDep
    ) -> Any:
        """直办: answered on the spot, no unit involved."""
        return await execute(
            request, deps, p, tenant, ref, lambda t, a, now: domain.direct_close(t, a, body.answer, now)
        )

    # ---- reads -------------------------------------------------------------------------------

    @router.get("/tickets/{ref}", response_model=TicketOut)
    async def get_ticket(
        tenant: TenantPath, ref: RefPath, deps: DepsDep, p: CallerDep, with_history: Annotated[bool, Query()] = False
    ) -> Any:
        """A ticket by id or 工单编号 (reporter masked, or withheld for confidential reports and 举报)."""
        async with deps.sessions() as s:
            t = await visible_ticket(deps, s, p, tenant, ref)
            rows = await store.history(s, t.id) if with_history else None
        return ticket_out(t, rows)

    @router.get("/tickets/{ref}/history", response_model=list[HistoryOut])
    async def get_history(tenant: TenantPath, ref: RefPath, deps: DepsDep, p: CallerDep) -> Any:
        """The 流转记录 of a ticket, oldest first."""
        async with deps.sessions() as s:
            t = await visible_ticket(deps, s, p, tenant, ref)
            rows = await store.history(s, t.id)
        return [history_out(r) for r in rows]

    @router.get("/worklist", response_model=WorklistPage)
    async def worklist(
        tenant: TenantPath,
        deps: DepsDep,
        p: CallerDep,
        status: Annotated[list[domain.Status] | None, Query()] = None,
        sla_colour: Annotated[Literal["green", "yellow", "red"] | None, Query()] = None,
        grid_code: Annotated[str | None, Query(max_length=32, pattern=CODE)] = None,
        category_code: Annotated[str | None, Query(max_length=32, pattern=CODE)] = None,
        unit_code: Annotated[str | None, Query(max_length=64, pattern=CODE, description="平台角色可按单位筛选")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Any:
        """A unit's worklist (only its own tickets), newest first, with cursor pagination.

        Platform, dispatcher and supervisor roles see the whole tenant and may filter by unit.
        """
        if p.kind == "staff" and p.role in READ_ALL_ROLES:
            unit, include_co = unit_code, False
        elif p.unit_code:
            unit, include_co = p.unit_code, True
        else:
            raise ApiError(403, "role_not_allowed", "该身份没有工作台")
        after = _parse_cursor(cursor) if cursor else None
        async with deps.sessions() as s:
            rows = await store.worklist(
                s,
                tenant,
                unit_code=unit,
                include_co_units=include_co,
                statuses=[x.value for x in status] if status else None,
                sla_colour=sla_colour,
                grid_code=grid_code,
                category_code=category_code,
                after=after,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return WorklistPage(
            items=[
                WorklistItem(
                    ticket_id=r.id,
                    ticket_no=r.ticket_no,
                    status=r.status,
                    category_code=r.category_code,
                    priority=r.priority,
                    unit_code=r.unit_code,
                    grid_code=r.grid_code,
                    sla_colour=r.sla_colour,
                    due_at=r.due_at,
                    received_at=r.received_at,
                )
                for r in rows
            ],
            next_cursor=_cursor(rows[-1].received_at, rows[-1].id) if more and rows else None,
        )

    # ---- attachments -------------------------------------------------------------------------

    @router.post("/tickets/{ref}/attachments", status_code=201)
    async def upload(
        tenant: TenantPath,
        ref: RefPath,
        deps: DepsDep,
        p: CallerDep,
        photos: Annotated[list[UploadFile], File(description="办理结果照片：JPEG/PNG/WebP/HEIC")],
    ) -> dict[str, list[str]]:
        """Upload reply photos for the unit the ticket is with; use the ids in `reply.attachment_ids`."""
        checked = await read_photos(photos, max_bytes=deps.max_photo_bytes, max_count=deps.max_photos)
        async with deps.sessions() as s, s.begin():
            t = await visible_ticket(deps, s, p, tenant, ref)
            if p.actor.unit_code is None or p.actor.unit_code != t.unit_code:
                raise ApiError(403, "role_not_allowed", "只有承办单位可以上传办理照片")
            ids = await save_photos(s, deps.storage, tenant=tenant, ticket_id=t.id, purpose="reply", photos=checked)
        return {"ids": [str(i) for i in ids]}

    @router.get("/tickets/{ref}/attachments")
    async def list_attachments(tenant: TenantPath, ref: RefPath, deps: DepsDep, p: CallerDep) -> list[dict[str, Any]]:
        """Photos of the report and of the replies."""
        async with deps.sessions() as s:
            t = await visible_ticket(deps, s, p, tenant, ref)
            rows = await store.attachments(s, t.id)
        return describe(rows)

    @router.get("/tickets/{ref}/attachments/{attachment_id}")
    async def get_attachment(
        tenant: TenantPath, ref: RefPath, attachment_id: uuid.UUID, deps: DepsDep, p: CallerDep
    ) -> Response:
        """One photo's bytes."""
        async with deps.sessions() as s:
            t = await visible_ticket(deps, s, p, tenant, ref)
            row = next((r for r in await store.attachments(s, t.id) if r.id == attachment_id), None)
        if row is None:
            raise ApiError(404, "attachment_not_found", "附件不存在")
        if row.state != "stored" or row.storage_key is None:
            # A 12345 attachment URL not fetched yet (pending) or given up on (failed, with a reason).
            raise ApiError(
                409, "attachment_not_stored", "附件尚未下载或下载失败", {"state": row.state, "reason": row.last_error}
            )
        data = await deps.storage.get(row.storage_key)
        return Response(data, media_type=row.content_type, headers={"X-Content-Type-Options": "nosniff"})

    # ---- personal information (audited) -------------------------------------------------------

    @router.post("/tickets/{ref}/contact", response_model=ContactOut)
    async def view_contact(tenant: TenantPath, ref: RefPath, body: ContactViewIn, deps: DepsDep, p: CallerDep) -> Any:
        """The reporter's phone and openid in clear, for the 12345 platform's 回访 only; every view is audited."""
        if p.kind != "staff" or p.role != "platform":
            raise ApiError(403, "role_not_allowed", "只有平台回访人员可以查看来电人联系方式")
        now = datetime.now(UTC)
        async with deps.sessions() as s, s.begin():
            t = await visible_ticket(deps, s, p, tenant, ref)
            contact = await store.get_contact(s, t.id)
            phone = deps.pii.open(contact.phone_sealed, "reporter-phone") if contact and contact.phone_sealed else None
            openid = (
                deps.pii.open(contact.openid_sealed, "reporter-openid") if contact and contact.openid_sealed else None
            )
            fields = [k for k, v in (("phone", phone), ("openid", openid)) if v]
            await store.audit_contact_view(
                s,
                tenant=tenant,
                ticket_id=t.id,
                actor=p.id,
                role=p.role,
                unit=p.unit_code,
                reason=body.reason,
                fields=fields,
            )
        return ContactOut(ticket_no=t.ticket_no, phone=phone, openid=openid, audited_at=now)

    @router.get("/tickets/{ref}/contact-views", response_model=list[ContactViewOut])
    async def contact_views(tenant: TenantPath, ref: RefPath, deps: DepsDep, p: CallerDep) -> Any:
        """Who viewed this reporter's contact data in clear, when and why."""
        if p.kind != "staff" or p.role not in ("platform", "supervisor"):
            raise ApiError(403, "role_not_allowed", "无权查看审计记录")
        async with deps.sessions() as s:
            t = await visible_ticket(deps, s, p, tenant, ref)
            rows = await store.contact_views(s, t.id)
        return [
            ContactViewOut(
                at=r.at, actor=r.actor, actor_role=r.actor_role, unit_code=r.unit_code, reason=r.reason, fields=r.fields
            )
            for r in rows
        ]

    return router
