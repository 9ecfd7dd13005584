"""routing's HTTP API: directory import for admins; the dispatcher's queue and commands (派单, 改派,
并单, 撤销并单, 退单审核); and "why did this ticket go to unit X".

Every endpoint needs a staff bearer token (the tokens intake's staff use, see
:mod:`gridline_boot.staff_auth`) of the tenant in the path: ``admin`` imports the directory,
``dispatcher`` works the queue and returns; both may read. The acting dispatcher recorded in audit
rows and events is the token's subject.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError
from gridline_boot.staff_auth import Staff, StaffTokenVerifier, authorize, bearer

from . import store
from .domain import Refused
from .handlers import Routing, import_directory


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def get_routing(request: Request) -> Routing:
    routing: Routing = request.app.state.routing
    return routing


def correlation(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4())


Tenant = Annotated[str, Path(pattern=r"^\d{6}$", description="GB/T 2260 code of the city or district")]
ADMIN, DISPATCHER = "admin", "dispatcher"
ROLES = (ADMIN, DISPATCHER)


def _staff(*roles: str) -> Any:
    async def dependency(
        request: Request, tenant: Tenant, authorization: Annotated[str | None, Header(max_length=4096)] = None
    ) -> Staff:
        verifier: StaffTokenVerifier | None = getattr(request.app.state, "staff_tokens", None)
        return authorize(bearer(verifier, authorization), tenant, roles)

    return Depends(dependency)


Admin = Annotated[Staff, _staff(ADMIN)]
Dispatcher = Annotated[Staff, _staff(DISPATCHER)]
Reader = Annotated[Staff, _staff(ADMIN, DISPATCHER)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
RoutingDep = Annotated[Routing, Depends(get_routing)]
Correlation = Annotated[str, Depends(correlation)]

# Refusals that mean "not in a state for this", not "bad input".
_NOT_FOUND = {"ticket_not_found", "return_not_found"}
_CONFLICT = {
    "not_in_manual_queue",
    "not_dispatched",
    "not_merged",
    "parent_not_open",
    "return_already_reviewed",
    "no_directory",
    "same_unit",
}


def _error(exc: Refused) -> ApiError:
    status = 404 if exc.code in _NOT_FOUND else 409 if exc.code in _CONFLICT else 422
    return ApiError(status, exc.code, exc.message, exc.details)


class DirectoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grids: dict[str, Any]
    bundle: dict[str, Any]
    imported_by: str | None = Field(default=None, max_length=64, description="defaults to the admin's id")
    crs: Literal["wgs84", "gcj02", "bd09"] = Field(default="wgs84", description="datum the grids are drawn in")


class DecisionOut(BaseModel):
    outcome: str
    unit_code: str | None
    rule_id: str | None
    reason_code: str | None
    directory_version: int | None
    trail: list[str]
    decided_at: datetime


class DispatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_code: str = Field(min_length=1, max_length=64)
    co_unit_codes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default=[], max_length=20)
    sla_policy_key: str | None = Field(default=None, max_length=64)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent_ticket_id: uuid.UUID


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approved: bool
    reason: str = Field(min_length=2, max_length=500)
    unit_code: str | None = Field(default=None, min_length=1, max_length=64, description="改派 to this unit")
    co_unit_codes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default=[], max_length=20)


def _ticket_out(row: Any, children: list[uuid.UUID] | None = None) -> dict[str, Any]:
    return {
        "ticket_id": row.ticket_id,
        "ticket_no": row.ticket_no,
        "category_code": row.category_code,
        "priority": row.priority,
        "status": row.status,
        "location": {"lon": row.lon, "lat": row.lat} if row.lon is not None else None,
        "address": row.address,
        "area_code": row.area_code,
        "received_at": row.received_at,
        "unit_code": row.unit_code,
        "co_unit_codes": row.co_unit_codes,
        "grid_code": row.grid_code,
        "parent_ticket_id": row.parent_ticket_id,
        "duplicate_count": row.duplicate_count,
        "returned_by": row.returned_by,
        **({"children": children} if children is not None else {}),
    }


def _return_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "unit_code": row.unit_code,
        "reason_code": row.reason_code,
        "basis": row.basis,
        "requested_at": row.requested_at,
        "review_due_at": row.review_due_at,
        "calendar_error": row.calendar_error,
        "status": row.status,
        "reviewer": row.reviewer,
        "reason": row.reason,
        "reviewed_at": row.reviewed_at,
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["routing"])

    @router.post("/directory", status_code=201)
    async def post_directory(
        tenant: Tenant, body: DirectoryIn, sessions: Sessions, cid: Correlation, staff: Admin
    ) -> Any:
        """Import a new directory version (grids GeoJSON + bundle) and publish it. Rejected whole, with a
        report of every problem (bad GeoJSON, unknown codes, overlapping grids, empty directory …), on any error."""
        async with sessions() as s, s.begin():
            version, report = await import_directory(
                s,
                tenant=tenant,
                grids=body.grids,
                bundle=body.bundle,
                imported_by=body.imported_by or staff.id,
                correlation_id=cid,
                crs=body.crs,
            )
        issues = [
            {"severity": i.severity, "code": i.code, "message": i.message, "subject": i.subject, "area_m2": i.area_m2}
            for i in report.issues
        ]
        if version is None:
            raise ApiError(422, "directory_invalid", "目录校验未通过，未导入", issues)
        return {"tenant": tenant, "version": version, "issues": issues}

    @router.get("/directory")
    async def get_directory(tenant: Tenant, sessions: Sessions, routing: RoutingDep, _: Reader) -> Any:
        """The live directory version: counts, who imported it and the warnings (gaps …) found at import."""
        async with sessions() as s:
            loaded = await routing.cache.get(s, tenant)
            row = await store.load_version(s, tenant, loaded.directory.version) if loaded else None
        if loaded is None or row is None:
            raise ApiError(404, "no_directory", "该区划尚未导入网格与派单目录")
        d = loaded.directory
        levels: dict[str, int] = {}
        for g in d.grids:
            levels[g.level] = levels.get(g.level, 0) + 1
        return {
            "tenant": tenant,
            "version": d.version,
            "grids": levels,
            "units": len(d.units),
            "categories": len(d.categories),
            "rules": len(d.rules),
            "gazetteer_entries": len(d.gazetteer),
            "imported_by": row.imported_by,
            "imported_at": row.imported_at,
            "warnings": row.report,
        }

    @router.get("/tickets/{ticket_id}/decisions", response_model=list[DecisionOut])
    async def why(tenant: Tenant, ticket_id: uuid.UUID, sessions: Sessions, _: Reader) -> Any:
        """Every routing decision for a ticket with its reasons: why it went to this unit (or to a dispatcher),
        duplicates, returns and their review, 改派."""
        async with sessions() as s:
            rows = await store.decisions(s, tenant, ticket_id)
        if not rows:
            raise ApiError(404, "no_decision", "该工单尚无派单记录")
        return [
            DecisionOut(
                outcome=r.outcome,
                unit_code=r.unit_code,
                rule_id=r.rule_id,
                reason_code=r.reason_code,
                directory_version=r.directory_version,
                trail=r.trail,
                decided_at=r.decided_at,
            )
            for r in rows
        ]

    @router.get("/tickets/{ticket_id}")
    async def get_ticket(tenant: Tenant, ticket_id: uuid.UUID, sessions: Sessions, _: Reader) -> Any:
        """Routing's view of a ticket: where it stands, its unit, its duplicates (并单) and who returned it."""
        async with sessions() as s:
            row = await store.get_ticket_row(s, ticket_id)
            if row is None or row.tenant != tenant:
                raise ApiError(404, "ticket_not_found", "路由服务中没有该工单")
            kids = await store.children(s, ticket_id)
        return _ticket_out(row, kids)

    @router.get("/queue")
    async def queue(
        tenant: Tenant,
        sessions: Sessions,
        routing: RoutingDep,
        _: Dispatcher,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        """The manual dispatch queue, oldest first, with the reason and suggested units for each ticket."""
        async with sessions() as s:
            rows = await store.manual_queue(s, tenant, limit)
            loaded = await routing.cache.get(s, tenant)
        now = datetime.now(UTC)
        items = []
        for r in rows:
            units = []
            for code in r.suggested_unit_codes:
                unit = loaded.directory.unit(code) if loaded else None
                units.append({"code": code, "name": unit.name if unit else None})
            items.append(
                _ticket_out(r)
                | {
                    "queued_at": r.queued_at,
                    "waiting_s": round((now - r.queued_at).total_seconds(), 1) if r.queued_at else None,
                    "reason_code": r.manual_reason_code,
                    "reason": r.manual_reason,
                    "suggested_units": units,
                }
            )
        return {"tenant": tenant, "items": items}

    @router.post("/tickets/{ticket_id}/dispatch")
    async def dispatch(
        tenant: Tenant,
        ticket_id: uuid.UUID,
        body: DispatchIn,
        sessions: Sessions,
        routing: RoutingDep,
        cid: Correlation,
        staff: Dispatcher,
    ) -> Any:
        """Manual 派单 of a ticket in the queue: publishes ``dispatch.assigned`` with match_method "manual"."""
        return await _assign(tenant, ticket_id, body, staff.id, sessions, routing, cid, reassign=False)

    @router.post("/tickets/{ticket_id}/reassign")
    async def reassign(
        tenant: Tenant,
        ticket_id: uuid.UUID,
        body: DispatchIn,
        sessions: Sessions,
        routing: RoutingDep,
        cid: Correlation,
        staff: Dispatcher,
    ) -> Any:
        """改派 of a dispatched ticket that its unit has not signed for yet."""
        return await _assign(tenant, ticket_id, body, staff.id, sessions, routing, cid, reassign=True)

    @router.post("/tickets/{ticket_id}/merge")
    async def merge(
        tenant: Tenant,
        ticket_id: uuid.UUID,
        body: MergeIn,
        sessions: Sessions,
        routing: RoutingDep,
        cid: Correlation,
        staff: Dispatcher,
    ) -> Any:
        """并单 by hand: a queued ticket joins an open ticket of the same tenant (``dispatch.duplicate_found``)."""
        try:
            async with sessions() as s, s.begin():
                event = await routing.merge(
                    s,
                    tenant,
                    ticket_id,
                    parent_ticket_id=body.parent_ticket_id,
                    dispatcher=staff.id,
                    correlation_id=cid,
                )
        except Refused as exc:
            raise _error(exc) from exc
        return event.model_dump(mode="json")

    @router.post("/tickets/{ticket_id}/unmerge")
    async def unmerge(
        tenant: Tenant,
        ticket_id: uuid.UUID,
        sessions: Sessions,
        routing: RoutingDep,
        cid: Correlation,
        staff: Dispatcher,
    ) -> Any:
        """撤销并单: ``dispatch.unmerged``, then the ticket is routed on its own (assigned or queued)."""
        try:
            async with sessions() as s, s.begin():
                decision = await routing.unmerge(s, tenant, ticket_id, dispatcher=staff.id, correlation_id=cid)
        except Refused as exc:
            raise _error(exc) from exc
        return {"unmerged": True, "decision": decision.event.model_dump(mode="json"), "trail": list(decision.trail)}

    @router.get("/returns")
    async def returns(
        tenant: Tenant,
        sessions: Sessions,
        _: Dispatcher,
        status: Literal["pending", "approved", "rejected"] | None = "pending",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        """退单 requests, oldest first (pending ones by default), with their review deadline."""
        async with sessions() as s:
            rows = await store.list_return_requests(s, tenant, status, limit)
        return {"tenant": tenant, "items": [_return_out(r) for r in rows]}

    @router.post("/returns/{request_id}/review")
    async def review(
        tenant: Tenant,
        request_id: Annotated[int, Path(ge=1)],
        body: ReviewIn,
        sessions: Sessions,
        routing: RoutingDep,
        cid: Correlation,
        staff: Dispatcher,
    ) -> Any:
        """退单审核 by a dispatcher inside the review window. Approved: 改派 to ``unit_code`` if given, else
        by the 派单目录 excluding every unit that returned the ticket. Rejected: the unit must handle it."""
        try:
            async with sessions() as s, s.begin():
                verdict = await routing.review_return(
                    s,
                    tenant,
                    request_id,
                    approved=body.approved,
                    dispatcher=staff.id,
                    reason=body.reason,
                    unit_code=body.unit_code,
                    co_unit_codes=body.co_unit_codes,
                    correlation_id=cid,
                )
        except Refused as exc:
            raise _error(exc) from exc
        return {"id": request_id, "approved": verdict.approved, "reviewer": verdict.reviewer, "reason": verdict.reason}

    return router


async def _assign(
    tenant: str,
    ticket_id: uuid.UUID,
    body: DispatchIn,
    dispatcher: str,
    sessions: async_sessionmaker[AsyncSession],
    routing: Routing,
    cid: str,
    *,
    reassign: bool,
) -> Any:
    try:
        async with sessions() as s, s.begin():
            event = await routing.manual_dispatch(
                s,
                tenant,
                ticket_id,
                unit_code=body.unit_code,
                co_unit_codes=body.co_unit_codes,
                dispatcher=dispatcher,
                sla_policy_key=body.sla_policy_key,
                correlation_id=cid,
                reassign=reassign,
            )
    except Refused as exc:
        raise _error(exc) from exc
    return event.model_dump(mode="json")
