"""routing's HTTP API: directory import for admins, and "why did this ticket go to unit X"."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError

from . import store
from .handlers import import_directory


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]


class DirectoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grids: dict[str, Any]
    bundle: dict[str, Any]
    imported_by: str = "admin-api"


class DecisionOut(BaseModel):
    outcome: str
    unit_code: str | None
    rule_id: str | None
    reason_code: str | None
    directory_version: int | None
    trail: list[str]
    decided_at: datetime


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["routing"])

    @router.post("/directory", status_code=201)
    async def post_directory(tenant: str, body: DirectoryIn, sessions: Sessions) -> Any:
        """Import a new directory version (grids GeoJSON + bundle). Rejected whole, with a report, on any error."""
        async with sessions() as s, s.begin():
            version, report = await import_directory(
                s, tenant=tenant, grids=body.grids, bundle=body.bundle, imported_by=body.imported_by
            )
        issues = [
            {"severity": i.severity, "code": i.code, "message": i.message, "subject": i.subject, "area_m2": i.area_m2}
            for i in report.issues
        ]
        if version is None:
            raise ApiError(422, "directory_invalid", "目录校验未通过，未导入", issues)
        return {"tenant": tenant, "version": version, "issues": issues}

    @router.get("/tickets/{ticket_id}/decisions", response_model=list[DecisionOut])
    async def why(tenant: str, ticket_id: uuid.UUID, sessions: Sessions) -> Any:
        """Every dispatch decision for a ticket with its reasons: why it went to this unit (or to a dispatcher)."""
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

    return router
