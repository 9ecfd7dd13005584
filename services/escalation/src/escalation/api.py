"""escalation's HTTP API for supervisors: a ticket's clock and the overdue board."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError

from . import store
from .domain import Clock


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]


class ClockOut(BaseModel):
    ticket_id: uuid.UUID
    kind: Literal["sign", "handle"]
    round: int
    ticket_no: str
    unit_code: str
    policy_key: str
    state: str
    colour: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    due_source: str
    level: str | None
    next_due_at: datetime | None
    extension_no: int
    stopped_at: datetime | None


def _out(c: Clock) -> ClockOut:
    return ClockOut(
        ticket_id=c.ticket_id,
        kind=c.kind,
        round=c.round,
        extension_no=c.extension_no,
        stopped_at=c.stopped_at,
        ticket_no=c.ticket_no,
        unit_code=c.unit_code,
        policy_key=c.policy_key,
        state=c.state,
        colour=c.colour,
        started_at=c.started_at,
        warn_at=c.warn_at,
        due_at=c.due_at,
        due_source=c.due_source,
        level=c.level,
        next_due_at=c.next_due_at,
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["escalation"])

    @router.get("/clocks/{ticket_id}", response_model=ClockOut)
    async def get_clock(
        tenant: str,
        ticket_id: uuid.UUID,
        sessions: Sessions,
        kind: Annotated[Literal["sign", "handle"], Query()] = "handle",
    ) -> Any:
        """A ticket's current SLA clock (办理 by default, ``kind=sign`` for 签收): deadline, colour, level."""
        async with sessions() as s:
            c = await store.get_clock(s, ticket_id, kind)
        if c is None or c.tenant != tenant:
            raise ApiError(404, "clock_not_found", "该工单尚无办理时限（未派单或不存在）")
        return _out(c)

    @router.get("/tickets/{ticket_id}/clocks", response_model=list[ClockOut])
    async def ticket_clocks(tenant: str, ticket_id: uuid.UUID, sessions: Sessions) -> Any:
        """Every clock a ticket has had (签收 and 办理, each round), oldest first."""
        async with sessions() as s:
            clocks = [c for c in await store.ticket_clocks(s, ticket_id) if c.tenant == tenant]
        if not clocks:
            raise ApiError(404, "clock_not_found", "该工单尚无办理时限（未派单或不存在）")
        return [_out(c) for c in clocks]

    @router.get("/board", response_model=list[ClockOut])
    async def board(
        tenant: str,
        sessions: Sessions,
        colour: Annotated[Literal["green", "yellow", "red"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """Open clocks by deadline, optionally only 黄牌 (yellow) or 红牌 (red): the overdue board."""
        async with sessions() as s:
            return [_out(c) for c in await store.board(s, tenant, colour, limit)]

    return router
