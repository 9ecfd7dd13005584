"""escalation's HTTP API for supervisors: a ticket's clock and the overdue board."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.http import ApiError
from gridline_calendar import DEFAULT_WORKING_HOURS, CalendarGapError, WorkCalendar

from . import deadline_store, rankings, review, store, supervision
from .domain import Clock, ClockError
from .handlers import Escalation
from .policy import DEFAULT_POLICIES, PolicyError, SlaPolicy, SlaRule, UnknownPolicyError, lookup_policy


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
    # Handling clocks armed by a dispatch: until when the unit may still request 退单 (policy snapshot's
    # return_window from the dispatch); None for 签收 clocks, 重办 rounds and policies without a window.
    return_window_ends_at: datetime | None = None


class ReviewOut(BaseModel):
    review_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_no: str
    unit_code: str | None
    review: Literal["return", "extension", "reply"]
    policy_key: str
    time_limit: str
    colour: str
    requested_at: datetime
    warn_at: datetime
    due_at: datetime
    escalate_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None


def _review_out(rc: review.ReviewClock) -> ReviewOut:
    return ReviewOut(
        review_id=rc.id,
        ticket_id=rc.ticket_id,
        ticket_no=rc.ticket_no,
        unit_code=rc.unit_code,
        review=rc.review,
        policy_key=rc.policy_key,
        time_limit=rc.time_limit,
        colour=rc.colour,
        requested_at=rc.requested_at,
        warn_at=rc.warn_at,
        due_at=rc.due_at,
        escalate_at=rc.escalate_at,
        stopped_at=rc.stopped_at,
        stop_reason=rc.stop_reason,
    )


class AckIn(BaseModel):
    by: str = Field(min_length=1, max_length=64, description="staff or unit id, not a name or phone number")
    kind: Literal["sign", "handle"] = "handle"


class WorkingHoursIn(BaseModel):
    windows: list[tuple[str, str]] = Field(min_length=1, max_length=6)


class CloseIn(BaseModel):
    verified_by: str
    verification: str


class CalendarDayIn(BaseModel):
    is_workday: bool
    note: str = ""


async def _outs(s: AsyncSession, escalation: Escalation, clocks: list[Clock]) -> list[ClockOut]:
    """The clocks as the API shows them, with the 退单 window's end of each dispatch's handling clock.

    A handling clock was armed by a dispatch when a 签收 clock of the same round exists or it is
    round 0 (a 重办 round has no 退单 window). Computed from the clock's own policy snapshot."""
    calendars: dict[str, WorkCalendar] = {}
    policies: dict[tuple[str, str, int], SlaPolicy] = {}
    signed_rounds = {(c.ticket_id, c.round) for c in clocks if c.kind == "sign"}
    handles = [c for c in clocks if c.kind == "handle" and c.round > 0 and (c.ticket_id, c.round) not in signed_rounds]
    if handles:
        signed_rounds |= await deadline_store.sign_rounds(s, list({c.ticket_id for c in handles}))
    out = []
    for c in clocks:
        ends = None
        if c.kind == "handle" and (c.round == 0 or (c.ticket_id, c.round) in signed_rounds):
            cal = calendars.get(c.tenant) or calendars.setdefault(c.tenant, await escalation.calendar(s, c.tenant))
            pk = (c.tenant, c.policy_key, c.policy_version)
            try:
                policy = policies.get(pk) or policies.setdefault(pk, await escalation.policy_of(s, c))
                ends = policy.return_window_end(c.started_at, cal)
            except (CalendarGapError, UnknownPolicyError):
                ends = None  # the board still answers; the window's end is unknown
        out.append(_out(c, ends))
    return out


def _out(c: Clock, return_window_ends_at: datetime | None = None) -> ClockOut:
    return ClockOut(
        return_window_ends_at=return_window_ends_at,
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


class SlaRuleBody(BaseModel):
    category_code: str = Field(min_length=1, max_length=32, description="a category code, or *")
    priority: str = "*"
    demand_type: str = "*"
    policy_key: str | None


class SponsorAreaBody(BaseModel):
    sponsor_code: str = Field(min_length=1, max_length=64)
    sponsor_name: str = Field(default="", max_length=200)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["escalation"])

    @router.get("/clocks/{ticket_id}", response_model=ClockOut)
    async def get_clock(
        tenant: str,
        ticket_id: uuid.UUID,
        sessions: Sessions,
        request: Request,
        kind: Annotated[Literal["sign", "handle"], Query()] = "handle",
    ) -> Any:
        """A ticket's current SLA clock (办理 by default, ``kind=sign`` for 签收): deadline, colour, level,
        and for a dispatch's handling clock the end of its 退单 window."""
        async with sessions() as s:
            c = await store.get_clock(s, ticket_id, kind)
            if c is None or c.tenant != tenant:
                raise ApiError(404, "clock_not_found", "该工单尚无办理时限（未派单或不存在）")
            return (await _outs(s, request.app.state.escalation, [c]))[0]

    @router.post("/clocks/{ticket_id}/ack", response_model=ClockOut)
    async def acknowledge(tenant: str, ticket_id: uuid.UUID, body: AckIn, sessions: Sessions, request: Request) -> Any:
        """Acknowledge the supervision step a ticket's clock is on: a repeating step (e.g. 督办 every 2 h) stops."""
        escalation: Escalation = request.app.state.escalation
        async with sessions() as s, s.begin():
            try:
                c = await escalation.acknowledge(s, tenant, ticket_id, body.kind, body.by)
            except ClockError as exc:
                raise ApiError(409, exc.code, "该工单当前没有可确认的重复督办步骤") from None
        if c is None:
            raise ApiError(404, "clock_not_found", "该工单尚无办理时限（未派单或不存在）")
        return _out(c)

    @router.get("/tickets/{ticket_id}/clocks", response_model=list[ClockOut])
    async def ticket_clocks(tenant: str, ticket_id: uuid.UUID, sessions: Sessions, request: Request) -> Any:
        """Every clock a ticket has had (签收 and 办理, each round), oldest first."""
        async with sessions() as s:
            clocks = [c for c in await store.ticket_clocks(s, ticket_id) if c.tenant == tenant]
            if not clocks:
                raise ApiError(404, "clock_not_found", "该工单尚无办理时限（未派单或不存在）")
            return await _outs(s, request.app.state.escalation, clocks)

    @router.get("/tickets/{ticket_id}/reviews", response_model=list[ReviewOut])
    async def ticket_reviews(tenant: str, ticket_id: uuid.UUID, sessions: Sessions) -> Any:
        """Every platform review the ticket has had timed (退单, 延期, reply), oldest request first."""
        async with sessions() as s:
            reviews = [r for r in await deadline_store.ticket_reviews(s, ticket_id) if r.tenant == tenant]
        return [_review_out(r) for r in reviews]

    @router.get("/reviews", response_model=list[ReviewOut])
    async def pending_reviews(
        tenant: str, sessions: Sessions, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> Any:
        """Reviews still waiting for the platform, soonest deadline first: the reviewers' overdue board."""
        async with sessions() as s:
            return [_review_out(r) for r in await deadline_store.open_reviews(s, tenant, limit)]

    @router.get("/board", response_model=list[ClockOut])
    async def board(
        tenant: str,
        sessions: Sessions,
        request: Request,
        colour: Annotated[Literal["green", "yellow", "red"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """Open clocks by deadline, optionally only 黄牌 (yellow) or 红牌 (red): the overdue board."""
        async with sessions() as s:
            return await _outs(s, request.app.state.escalation, await store.board(s, tenant, colour, limit))

    @router.get("/policies")
    async def list_policies(tenant: str, sessions: Sessions) -> Any:
        """The policies new tickets are armed with: the tenant's newest versions, then the built-in defaults."""
        async with sessions() as s:
            own = await store.tenant_policies(s, tenant)
        merged = {
            **{k: ("default", p) for k, p in DEFAULT_POLICIES.items()},
            **{k: ("tenant", p) for k, p in own.items()},
        }
        return [{"source": src, **p.to_dict()} for _, (src, p) in sorted(merged.items())]

    @router.get("/policies/{key}")
    async def policy_versions(tenant: str, key: str, sessions: Sessions) -> Any:
        """Every version of one policy, oldest first (open tickets keep the version they were armed with)."""
        async with sessions() as s:
            versions = await store.policy_history(s, tenant, key)
        if not versions and key in DEFAULT_POLICIES:
            versions = [DEFAULT_POLICIES[key]]
        if not versions:
            raise ApiError(404, "unknown_policy", f"未知的时限策略 {key}")
        return [p.to_dict() for p in versions]

    @router.post("/policies", status_code=201)
    async def save_policy(tenant: str, body: dict[str, Any], sessions: Sessions) -> Any:
        """Save a policy as the next version of its key. Validated in full; tickets already open are unaffected."""
        try:
            candidate = SlaPolicy.from_dict({**body, "version": 1})
        except PolicyError as exc:
            raise ApiError(422, "invalid_policy", "时限策略无效，请检查时限、预警和督办阶梯的设置", str(exc)) from None
        async with sessions() as s, s.begin():
            if candidate.sign_policy_key is not None:
                try:
                    lookup_policy(candidate.sign_policy_key, await store.tenant_policies(s, tenant))
                except UnknownPolicyError:
                    raise ApiError(
                        422, "unknown_sign_policy", f"签收时限策略 {candidate.sign_policy_key} 不存在，请先创建"
                    ) from None
            try:
                saved = await store.add_policy_version(s, tenant, candidate)
            except IntegrityError:
                raise ApiError(409, "policy_version_conflict", "该策略正被他人同时修改，请刷新后重试") from None
        return saved.to_dict()

    @router.get("/sla-rules")
    async def list_sla_rules(tenant: str, sessions: Sessions, history: bool = False) -> list[dict[str, Any]]:
        """The tenant's policy table: (category, priority, demand type) → policy key, ``*`` = any.

        The newest version of each rule (``history=true``: every version); most specific match wins."""
        async with sessions() as s:
            return [asdict(r) for r in await store.sla_rules(s, tenant, history=history)]

    @router.post("/sla-rules", status_code=201)
    async def save_sla_rule(tenant: str, body: SlaRuleBody, sessions: Sessions) -> dict[str, Any]:
        """Save a rule as the next version of its key; ``policy_key: null`` withdraws it.

        Validated: the codes, and that the policy exists (tenant's or built-in). Open tickets keep the
        policy version they were armed with."""
        try:
            rule = SlaRule(body.category_code, body.priority, body.demand_type, body.policy_key)
        except PolicyError as exc:
            raise ApiError(422, "invalid_sla_rule", "时限规则无效，请检查类别、紧急程度和诉求类型", str(exc)) from None
        async with sessions() as s, s.begin():
            if rule.policy_key is not None:
                try:
                    lookup_policy(rule.policy_key, await store.tenant_policies(s, tenant))
                except UnknownPolicyError:
                    raise ApiError(422, "unknown_policy", f"时限策略 {rule.policy_key} 不存在，请先创建") from None
            try:
                saved = await store.add_sla_rule(s, tenant, rule)
            except IntegrityError:
                raise ApiError(409, "sla_rule_version_conflict", "该规则正被他人同时修改，请刷新后重试") from None
        return asdict(saved)

    @router.get("/calendar/working-hours")
    async def get_working_hours(tenant: str, sessions: Sessions) -> Any:
        """The tenant's working-hour windows (local wall times); the default when it has none."""
        async with sessions() as s:
            hours = await store.tenant_working_hours(s, tenant)
        windows = hours or list(DEFAULT_WORKING_HOURS)
        return {"windows": [[a.isoformat("minutes"), b.isoformat("minutes")] for a, b in windows]}

    @router.put("/calendar/working-hours", status_code=204)
    async def put_working_hours(tenant: str, body: WorkingHoursIn, sessions: Sessions) -> None:
        """Set the tenant's working-hour windows (working-hour limits, close of business).

        Deadlines already computed keep their value; times computed from now on use the new windows."""
        try:
            windows = [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in body.windows]
            WorkCalendar(working_hours=windows)  # validates: non-empty, ordered, not overlapping
        except ValueError as exc:
            raise ApiError(
                422, "bad_working_hours", "工作时段无效：须为按时间先后排列、互不重叠的 HH:MM 时段", str(exc)
            ) from None
        async with sessions() as s, s.begin():
            await store.set_working_hours(s, tenant, windows)

    @router.put("/calendar/{day}", status_code=204)
    async def put_override(tenant: str, day: date, body: CalendarDayIn, sessions: Sessions) -> None:
        """Mark a day as working day (补班) or rest day (放假) for this tenant; wins over chinese_calendar.

        Entering any day of a year chinese_calendar does not cover declares that year's notice entered:
        its other days follow Monday–Friday."""
        async with sessions() as s, s.begin():
            await store.set_override(s, tenant, day, body.is_workday, body.note)

    @router.delete("/calendar/{day}", status_code=204)
    async def delete_override(tenant: str, day: date, sessions: Sessions) -> None:
        """Remove this tenant's override of one day."""
        async with sessions() as s, s.begin():
            if not await store.delete_override(s, tenant, day):
                raise ApiError(404, "override_not_found", "该日期没有本地调整")

    @router.get("/calendar/{year}")
    async def calendar_year(tenant: str, year: int, sessions: Sessions, request: Request) -> Any:
        """Whether deadlines can be computed in ``year``, and its working days by month.

        A year neither chinese_calendar nor the tenant's overrides cover answers 409 ``calendar_gap``:
        enter the State Council holiday notice for it before deadlines reach it."""
        if not 2004 <= year <= 2100:
            raise ApiError(422, "bad_year", "年份超出范围（2004–2100）")
        async with sessions() as s:
            overrides = await store.overrides(s, tenant)
        years = {d.year for d in overrides} - set(range(2004, 2027))
        cal = WorkCalendar(request.app.state.timezone, overrides, override_years=years)
        try:
            workdays: dict[int, int] = {}
            d = date(year, 1, 1)
            while d.year == year:
                workdays[d.month] = workdays.get(d.month, 0) + cal.is_workday(d)
                d = date.fromordinal(d.toordinal() + 1)
        except CalendarGapError as exc:
            raise ApiError(
                409, "calendar_gap", f"{year} 年缺少工作日历数据：请录入国务院办公厅当年放假安排", str(exc)
            ) from None
        own = {d.isoformat(): v for d, v in sorted(overrides.items()) if d.year == year}
        return {"year": year, "workdays_by_month": workdays, "overrides": own}

    @router.get("/supervisions")
    async def list_supervisions(
        tenant: str,
        sessions: Sessions,
        open_only: Annotated[bool, Query(alias="open")] = True,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """督办单, 挂牌督办, 约谈 and 问责 records opened by the ladder, soonest report-back deadline first."""
        async with sessions() as s:
            return [asdict(r) for r in await store.supervisions(s, tenant, open_only=open_only, limit=limit)]

    @router.post("/supervisions/{supervision_id}/close")
    async def close_supervision(
        tenant: str, supervision_id: uuid.UUID, body: CloseIn, sessions: Sessions, request: Request
    ) -> Any:
        """销号: close a supervision record after verifying the rectification; who verified and what they found.

        Its report-back deadline stops firing; ``supervision.closed`` is published."""
        escalation: Escalation = request.app.state.escalation
        async with sessions() as s, s.begin():
            try:
                closed = await escalation.close_supervision(
                    s, tenant, supervision_id, body.verified_by, body.verification
                )
            except supervision.SupervisionError as exc:
                raise ApiError(409 if exc.code == "already_closed" else 422, exc.code, exc.message) from None
            if closed is None:
                raise ApiError(404, "supervision_not_found", "督办记录不存在")
        return asdict(closed)

    @router.get("/sponsor-areas")
    async def list_sponsor_areas(tenant: str, sessions: Sessions) -> list[dict[str, Any]]:
        """包抓/包保 assignments: which sponsor answers for which 社区, 街道 or grid (by code prefix)."""
        async with sessions() as s:
            return await store.sponsor_areas(s, tenant)

    @router.put("/sponsor-areas/{area_code}")
    async def put_sponsor_area(
        tenant: str, area_code: str, body: SponsorAreaBody, sessions: Sessions
    ) -> dict[str, Any]:
        if not area_code.isdigit() or not 9 <= len(area_code) <= 20:
            raise ApiError(422, "bad_area_code", "区域编码应为 9–20 位数字（街道 9 位、社区 12 位或网格编码）")
        async with sessions() as s, s.begin():
            await store.set_sponsor_area(s, tenant, area_code, body.sponsor_code, body.sponsor_name)
        return {"area_code": area_code, "sponsor_code": body.sponsor_code, "sponsor_name": body.sponsor_name}

    @router.delete("/sponsor-areas/{area_code}", status_code=204)
    async def delete_sponsor_area(tenant: str, area_code: str, sessions: Sessions) -> Response:
        async with sessions() as s, s.begin():
            if not await store.delete_sponsor_area(s, tenant, area_code):
                raise ApiError(404, "unknown_area", "该区域没有包抓单位")
        return Response(status_code=204)

    @router.get("/repeat-points", response_model=None)
    async def repeat_points_view(
        tenant: str,
        sessions: Sessions,
        request: Request,
        min_reports: Annotated[int, Query(alias="min", ge=2, le=1000)] = 3,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        day: Annotated[date | None, Query(description="last day of the window; default today")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Any:
        """重复投诉点位: places with at least ``min`` reports received in the ``days`` days ending with ``day``.

        "The same place" is defined in docs/escalation.md (0.001° cell, else normalised address)."""
        tz = ZoneInfo(request.app.state.timezone)
        last = day or datetime.now(tz).date()
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
        start = end - timedelta(days=days)
        async with sessions() as s:
            points = await store.repeat_points(s, tenant, start, end, min_reports, limit)
        for p in points:
            p["categories"] = sorted(p["categories"])
        if format == "csv":
            buf = io.StringIO()
            out = csv.writer(buf)
            cols = ["place_key", "reports", "first_at", "last_at", "grid_code", "lat", "lon", "address"]
            out.writerow([*cols, "categories", "ticket_nos"])
            for p in points:
                out.writerow([*(p[c] for c in cols), " ".join(p["categories"]), " ".join(p["ticket_nos"])])
            name = f"repeat-points-{tenant}-{last.isoformat()}.csv"
            return Response(
                buf.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return {
            "tenant": tenant,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "min_reports": min_reports,
            "points": points,
        }

    @router.get("/rankings", response_model=None)
    async def rankings_view(
        tenant: str,
        sessions: Sessions,
        request: Request,
        period: Annotated[Literal["day", "week", "month"], Query()] = "month",
        level: Annotated[Literal["unit", "street", "community", "sponsor"], Query()] = "unit",
        day: Annotated[date | None, Query(description="any day in the period; default today")] = None,
        k: Annotated[int, Query(ge=1, le=50)] = 3,
        weights: Annotated[str | None, Query(description="e.g. on_time_close:0.4,satisfaction:0.6")] = None,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Any:
        """Per-unit rates for a day, week (Mon–Sun) or month, the composite score and the 红黑榜 (top/bottom k).

        Formulas: docs/escalation.md. ``format=csv`` gives one row per unit, best score first."""
        tz = ZoneInfo(request.app.state.timezone)
        now = datetime.now(tz)
        start, end = rankings.period_bounds(period, day or now.date(), tz)
        w = dict(rankings.DEFAULT_WEIGHTS)
        if weights:
            try:
                w = {name: float(value) for name, value in (p.split(":", 1) for p in weights.split(","))}
                rankings.validate_weights(w)
            except ValueError as exc:
                raise ApiError(
                    422, "bad_weights", "权重格式应为 名称:数值，以逗号分隔，且不能全为零", str(exc)
                ) from None
        async with sessions() as s:
            counts = await store.unit_counts(s, tenant, start, end, now, level)
        scored = rankings.score_units(counts, w)
        red, black = rankings.red_black(scored, k)
        if format == "csv":
            buf = io.StringIO()
            out = csv.writer(buf)
            out.writerow(["unit_code", "score", *rankings.RATE_NAMES, "overdue_open", "mean_handling_hours"])
            for u in scored:
                out.writerow(
                    [
                        u.unit_code,
                        u.score,
                        *(u.rates[n] for n in rankings.RATE_NAMES),
                        u.overdue_open,
                        u.mean_handling_hours,
                    ]
                )
            name = f"rankings-{tenant}-{level}-{period}-{start.date().isoformat()}.csv"
            return Response(
                buf.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )

        def row(u: rankings.UnitScore) -> dict[str, Any]:
            return {
                "unit_code": u.unit_code,
                "score": u.score,
                "rates": u.rates,
                "overdue_open": u.overdue_open,
                "mean_handling_hours": u.mean_handling_hours,
            }

        return {
            "period": period,
            "level": level,
            "start": start,
            "end": end,
            "weights": w,
            "units": [row(u) for u in scored],
            "red": [row(u) for u in red],
            "black": [row(u) for u in black],
        }

    return router
