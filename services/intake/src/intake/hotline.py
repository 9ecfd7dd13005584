"""12345 hotline orders pushed by a hotline platform (domain §7.2), signed with the integration's key.

The same order pushed twice is one ticket: ``(tenant, integration, external_id)`` is unique and the
canonical body's hash tells a repeat (answered as before, nothing changes) from a changed re-push
(an update, kept in the history as ``ticket.updated``). ``ticket.received`` carries the order's
origin, so notify can push status and results back to the platform under its own order id.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError

from gridline_boot.http import ApiError
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import OrderOrigin, ReporterRef

from . import domain, handlers, store
from .access import DepsDep, SignedDep
from .api import admit, new_query_code, seal_contact
from .attachments import queue_urls
from .inputs import Input

DEMAND = {"咨询": "consult", "求助": "help", "投诉": "complaint", "举报": "report", "建议": "suggestion"}
PRIORITY = {"特急": "critical", "紧急": "urgent", "一般": "normal"}


class HotlineOrderIn(Input):
    """A 12345 work order as the hotline platform records it (domain §7.2)."""

    external_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="平台工单号")
    call_time: datetime = Field(description="来电时间（带时区）")
    caller_name: str | None = Field(default=None, max_length=50)
    phone: str | None = Field(default=None, max_length=32)
    demand_type: Literal["咨询", "求助", "投诉", "举报", "建议"]
    category_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    content: str = Field(min_length=2, max_length=4000)
    address: str | None = Field(default=None, max_length=500)
    area_code: str | None = Field(default=None, pattern=r"^\d{6,12}$", description="区县/街道行政区划代码")
    priority: Literal["特急", "紧急", "一般"] = "一般"
    due_at: datetime | None = Field(default=None, description="平台规定的办结时限")
    confidential: bool = Field(default=False, description="来电人要求保密")
    attachment_urls: list[str] = Field(
        default=[], max_length=20, description="附件地址（https）；受理后异步下载，下载失败不影响工单"
    )

    @field_validator("call_time", "due_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("时间必须带时区")
        return v

    @field_validator("attachment_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for u in v:
            if not u.startswith("https://") or len(u) > 1000:
                raise ValueError("附件地址须为 https 链接")
        return v


class HotlineOrderOut(BaseModel):
    ticket_id: uuid.UUID
    ticket_no: str
    external_id: str
    status: str
    outcome: Literal["created", "unchanged", "updated"]
    changed_fields: list[str] = []
    query_code: str | None = Field(default=None, description="仅首次受理时返回，供来电人查询进度")


class HotlineStatusOut(BaseModel):
    ticket_no: str
    external_id: str
    status: str
    status_zh: str
    unit_code: str | None
    steps: list[dict[str, Any]]


def _hash(body: HotlineOrderIn) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _fields(body: HotlineOrderIn) -> dict[str, Any]:
    return {
        "category_code": body.category_code,
        "description": body.content,
        "demand_type": DEMAND[body.demand_type],
        "priority": PRIORITY[body.priority],
        "address": body.address,
        "area_code": body.area_code,
        "platform_due_at": body.due_at,
    }


def build_hotline_router() -> APIRouter:
    router = APIRouter(prefix="/v1/hotline", tags=["hotline"])

    @router.post("/orders", response_model=HotlineOrderOut)
    async def push_order(body: HotlineOrderIn, request: Request, deps: DepsDep, p: SignedDep) -> Any:
        """Push a 12345 work order (signed: X-Api-Key, X-Timestamp, X-Nonce, X-Signature).

        201 when a ticket is created; 200 when the order was known (unchanged, or updated in place).
        """
        if "submit" not in p.scopes:
            raise ApiError(403, "scope_missing", "该接入方没有提交工单的权限")
        now = datetime.now(UTC)
        if body.call_time > now:
            raise ApiError(422, "call_time_in_future", "来电时间不能晚于当前时间")
        digest = _hash(body)
        fields = _fields(body)
        cid = getattr(request.state, "correlation_id", None)
        for _ in range(2):  # a concurrent first push of the same order loses the unique race once
            try:
                async with deps.sessions() as s, s.begin():
                    known = await store.find_by_source(s, p.tenant, p.id, body.external_id, for_update=True)
                    if known is None:
                        contact, reporter = None, ReporterRef(confidential=body.confidential)
                        if body.phone:
                            contact, reporter = seal_contact(
                                deps, body.phone, tenant=p.tenant, confidential=body.confidential, name=body.caller_name
                            )
                        report = domain.Report(
                            tenant=p.tenant,
                            channel="hotline",
                            location=None,
                            reported_at=body.call_time,
                            reporter=reporter,
                            origin=OrderOrigin(integration=p.id, external_id=body.external_id),
                            **fields,
                        )
                        code = new_query_code()
                        t = await admit(
                            s, report, contact, code, now, cid, source_hash=digest, numbers=deps.ticket_numbers
                        )
                        # Fetched later by the worker: a slow or dead file server never loses the order.
                        await queue_urls(s, tenant=p.tenant, ticket_id=t.id, urls=body.attachment_urls, now=now)
                        out = HotlineOrderOut(
                            ticket_id=t.id,
                            ticket_no=t.ticket_no,
                            external_id=body.external_id,
                            status=t.status.value,
                            outcome="created",
                            query_code=code,
                        )
                        deps.metrics_received("hotline")
                        return JSONResponse(out.model_dump(mode="json"), status_code=201)
                    t, prior_hash = known
                    # A re-push may add attachments; the ones already known are kept as they are.
                    await queue_urls(s, tenant=p.tenant, ticket_id=t.id, urls=body.attachment_urls, now=now)
                    if prior_hash == digest:
                        return HotlineOrderOut(
                            ticket_id=t.id,
                            ticket_no=t.ticket_no,
                            external_id=body.external_id,
                            status=t.status.value,
                            outcome="unchanged",
                        )
                    try:
                        decision = domain.update_from_source(t, fields, p.actor, now)
                    except domain.TransitionRefused as exc:
                        raise ApiError(409, exc.code, exc.message, exc.details) from exc

                    def envelope(e: EventData, t: domain.Ticket = t) -> Envelope[Any]:
                        return Envelope(
                            source="intake", tenant=t.tenant, subject=str(t.id), correlation_id=cid or str(t.id), data=e
                        )

                    await handlers.save_decision(s, t, decision, now, envelope_for=envelope)
                    await store.set_source_hash(s, t.id, digest)
                    changed = list(decision.events[0].changed_fields) if decision.events else []  # type: ignore[attr-defined]
                    return HotlineOrderOut(
                        ticket_id=t.id,
                        ticket_no=t.ticket_no,
                        external_id=body.external_id,
                        status=decision.ticket.status.value,
                        outcome="updated" if changed else "unchanged",
                        changed_fields=changed,
                    )
            except IntegrityError:
                continue
        raise ApiError(409, "concurrent_push", "同一工单正在被并发推送，请稍后重试")

    @router.get("/orders/{external_id}", response_model=HotlineStatusOut)
    async def order_status(
        deps: DepsDep, p: SignedDep, external_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    ) -> Any:
        """Status and 流转记录 of an order this platform pushed (signed; no personal data)."""
        if "read_own" not in p.scopes:
            raise ApiError(403, "scope_missing", "该接入方没有查询权限")
        async with deps.sessions() as s:
            known = await store.find_by_source(s, p.tenant, p.id, external_id)
            if known is None:
                raise ApiError(404, "order_not_found", "未找到该平台工单")
            t = known[0]
            rows = await store.history(s, t.id)
        return HotlineStatusOut(
            ticket_no=t.ticket_no,
            external_id=external_id,
            status=t.status.value,
            status_zh=domain.STATUS_ZH[t.status],
            unit_code=t.unit_code,
            steps=[
                {"at": r.at.isoformat(), "action": r.action, "to_status": r.to_status, "note": r.note} for r in rows
            ],
        )

    return router
