"""Routing use cases: the directory cache, dispatching new tickets (duplicates first), keeping routing's
read model of tickets, 退单 review and 改派, dispatcher commands, importing directory versions.

Every use case runs inside the caller's transaction (the consumer's or the API's) and writes its state
change, its audit row (``decision``) and its events (outbox) together; nothing here commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_calendar import CalendarGapError, WorkCalendar
from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.intake import (
    TicketDispatchedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketReturnRequestedV1,
    TicketUnmergedV1,
    Transition,
)
from gridline_contracts.routing import (
    DirectoryVersionPublishedV1,
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchUnmergedV1,
)
from gridline_geo.crs import Crs
from gridline_messaging import outbox

from . import domain, metrics, store
from .directory import (
    Directory,
    DuplicatePolicy,
    Issue,
    ValidationReport,
    assemble,
    calendar_gap_reason,
    geojson_to_wgs84,
    load_bundle,
    load_geojson,
)
from .gazetteer import normalise
from .gridindex import GridIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    directory: Directory
    index: GridIndex


def build_directory(
    tenant: str, version: int, grids: dict[str, Any], bundle: dict[str, Any]
) -> tuple[Loaded | None, ValidationReport]:
    """Parse and check a directory; None when it has errors (it must never be used for dispatch)."""
    grid_list, grid_report = load_geojson(grids)
    parsed, bundle_report = load_bundle({**bundle, "tenant": tenant})
    directory, cross = assemble(parsed, grid_list, version=version)
    report = grid_report + bundle_report + cross
    if not report.ok:
        return None, report
    return Loaded(directory, GridIndex.build(directory.grids)), report


class DirectoryCache:
    """The newest directory version per tenant, rebuilt (index included) only when the version changes."""

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._loaded: dict[str, Loaded] = {}
        self._checked: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def get(self, session: AsyncSession, tenant: str) -> Loaded | None:
        now = time.monotonic()
        current = self._loaded.get(tenant)
        if current is not None and now - self._checked.get(tenant, 0.0) < self.refresh_s:
            return current
        version = await store.latest_version(session, tenant)
        self._checked[tenant] = now
        if version is None:
            return None
        if current is not None and current.directory.version == version:
            return current
        async with self._lock:
            row = await store.load_version(session, tenant, version)
            loaded, report = build_directory(tenant, version, row.grids, row.bundle)
            if loaded is None:  # imports are checked, so this means a code change broke an old version
                log.error("directory %s v%s no longer loads: %s", tenant, version, report.codes())
                return current
            self._loaded[tenant] = loaded
            log.info("directory %s v%s loaded: %d grids", tenant, version, len(loaded.directory.grids))
            return loaded


MakeEnvelope = Callable[[EventData], Envelope[Any]]


def api_envelopes(tenant: str, ticket_id: uuid.UUID | str, correlation_id: str) -> MakeEnvelope:
    """Envelopes for events a dispatcher's HTTP command causes (key: the ticket id)."""
    return lambda data: Envelope[Any](
        source="routing", tenant=tenant, subject=str(ticket_id), correlation_id=correlation_id, data=data
    )


def unit_label(directory: Directory | None, code: str | None) -> str:
    """A unit code as a metric label: only codes of the directory, so label values stay bounded."""
    return code if directory is not None and code is not None and directory.unit(code) is not None else "other"


class Routing:
    def __init__(
        self,
        *,
        cache: DirectoryCache,
        min_confidence: float,
        duplicates: DuplicatePolicy,
        returns: domain.ReturnPolicy,
    ) -> None:
        self.cache = cache
        self.min_confidence = min_confidence
        self.duplicates = duplicates
        self.returns = returns

    # -- shared steps -----------------------------------------------------------------------------

    async def _record(
        self,
        session: AsyncSession,
        *,
        ticket_id: uuid.UUID,
        tenant: str,
        outcome: str,
        event: EventData,
        trail: Sequence[str],
        now: datetime,
        make: MakeEnvelope,
        directory_version: int | None = None,
        reason_code: str | None = None,
    ) -> None:
        """The audit row (answers "why") and the event, in the caller's transaction."""
        assigned = event if isinstance(event, DispatchAssignedV1) else None
        await store.add_decision(
            session,
            ticket_id=ticket_id,
            tenant=tenant,
            outcome=outcome,
            unit_code=assigned.unit_code if assigned else getattr(event, "unit_code", None),
            rule_id=assigned.rule_id if assigned else None,
            reason_code=reason_code,
            directory_version=directory_version,
            trail=list(trail),
            event=event.model_dump(mode="json"),
            decided_at=now,
        )
        await outbox.add(session, store.outbox, [make(event)])

    async def _apply_decision(
        self,
        session: AsyncSession,
        tenant: str,
        decision: domain.Decision,
        loaded: Loaded | None,
        now: datetime,
        make: MakeEnvelope,
        *,
        outcome: str | None = None,
    ) -> None:
        """Record a dispatch decision and move routing's copy of the ticket accordingly."""
        ev = decision.event
        if isinstance(ev, DispatchAssignedV1):
            values: dict[str, Any] = {
                "status": "dispatched",
                "unit_code": ev.unit_code,
                "co_unit_codes": list(ev.co_unit_codes),
                "grid_code": ev.grid_code,
                "queued_at": None,
                "manual_reason_code": None,
                "manual_reason": None,
                "suggested_unit_codes": [],
            }
        else:
            values = {
                "status": "awaiting_manual",
                "unit_code": None,
                "co_unit_codes": [],
                "queued_at": now,
                "manual_reason_code": ev.reason_code,
                "manual_reason": ev.reason,
                "suggested_unit_codes": list(ev.suggested_unit_codes),
            }
        await store.update_ticket(session, ev.ticket_id, now, **values)
        kind = outcome or ("assigned" if decision.assigned else "needs_manual")
        await self._record(
            session,
            ticket_id=ev.ticket_id,
            tenant=tenant,
            outcome=kind,
            event=ev,
            trail=decision.trail,
            now=now,
            make=make,
            directory_version=loaded.directory.version if loaded else None,
            reason_code=decision.reason_code,
        )
        metrics.DECISIONS.labels(kind, decision.reason_code or "").inc()

    def _decide(self, ticket: domain.TicketToRoute, loaded: Loaded | None, now: datetime) -> domain.Decision:
        """:func:`domain.decide`, except that no directory or a bug sends the ticket to a dispatcher."""
        if loaded is None:
            event = DispatchNeedsManualV1(
                ticket_id=ticket.ticket_id,
                reason_code="no_directory",
                reason="该区划尚未导入网格与派单目录",
                decided_at=now,
            )
            return domain.Decision(event, (f"check: 租户 {ticket.tenant} 没有目录版本",))
        try:
            return domain.decide(ticket, loaded.directory, loaded.index, now, min_confidence=self.min_confidence)
        except Exception:
            # A routing failure must never lose a ticket: it goes to the manual queue.
            log.exception("routing failed for ticket %s", ticket.ticket_id)
            event = DispatchNeedsManualV1(
                ticket_id=ticket.ticket_id,
                reason_code="routing_error",
                reason="自动派单出错，请派单员处理",
                decided_at=now,
            )
            return domain.Decision(event, ("result: 自动派单出错，转人工派单 (routing_error)",))

    # -- Kafka: ticket lifecycle ------------------------------------------------------------------

    async def on_ticket_received(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReceivedV1 = env.data
        now = datetime.now(UTC)
        ticket = domain.TicketToRoute.from_event(e, tenant=env.tenant)
        make: MakeEnvelope = lambda data: env.caused(data, source="routing")  # noqa: E731
        if not await store.insert_ticket(session, ticket, ticket_no=e.ticket_no, received_at=e.received_at, now=now):
            log.warning("ticket %s received again; routing decided it already", e.ticket_id)
            return
        loaded = await self.cache.get(session, env.tenant)
        category = loaded.directory.category(e.category_code) if loaded else None
        policy = category.duplicates.resolve(self.duplicates) if category else self.duplicates
        if policy.enabled and policy.window_h is not None:
            await store.lock_duplicate_scope(session, env.tenant, e.category_code)
            since = e.received_at - timedelta(hours=policy.window_h)
            candidates = await store.duplicate_candidates(session, env.tenant, e.category_code, since, e.received_at)
            key = loaded.directory.address_matcher.address_key if loaded else normalise
            duplicate = domain.find_duplicate(ticket, e.received_at, candidates, policy, now, address_key=key)
            if duplicate is not None:
                await self._merge(session, env.tenant, duplicate.event, duplicate.trail, now, make, how="auto")
                return
        await self._apply_decision(session, env.tenant, self._decide(ticket, loaded, now), loaded, now, make)

    async def _merge(
        self,
        session: AsyncSession,
        tenant: str,
        event: DispatchDuplicateFoundV1,
        trail: Sequence[str],
        now: datetime,
        make: MakeEnvelope,
        *,
        how: str,
    ) -> None:
        await store.update_ticket(
            session,
            event.ticket_id,
            now,
            status="merged",
            parent_ticket_id=event.parent_ticket_id,
            queued_at=None,
            unit_code=None,
        )
        await store.bump_duplicates(session, event.parent_ticket_id, +1, now)
        await self._record(
            session,
            ticket_id=event.ticket_id,
            tenant=tenant,
            outcome="duplicate",
            event=event,
            trail=trail,
            now=now,
            make=make,
        )
        metrics.DUPLICATES.labels(how).inc()

    async def on_ticket_dispatched(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketDispatchedV1 = env.data
        await store.update_ticket(
            session,
            e.ticket_id,
            datetime.now(UTC),
            status="dispatched",
            unit_code=e.unit_code,
            co_unit_codes=list(e.co_unit_codes),
            grid_code=e.grid_code,
            queued_at=None,
        )

    async def on_ticket_status(self, session: AsyncSession, env: Envelope[Any], *, status: str) -> None:
        """Signed, reopened, closed, archived …: only where the ticket stands matters to routing."""
        e: Transition = env.data
        await store.update_ticket(session, e.ticket_id, datetime.now(UTC), status=status, queued_at=None)

    async def on_ticket_merged(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketMergedV1 = env.data
        current = await store.get_ticket(session, e.ticket_id, for_update=True)
        if current is None or current.parent_ticket_id == e.parent_ticket_id:
            return  # routing merged it itself (the usual case): nothing new
        now = datetime.now(UTC)
        if current.parent_ticket_id is not None:
            await store.bump_duplicates(session, current.parent_ticket_id, -1, now)
        await store.update_ticket(session, e.ticket_id, now, status="merged", parent_ticket_id=e.parent_ticket_id)
        await store.bump_duplicates(session, e.parent_ticket_id, +1, now)

    async def on_ticket_unmerged(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketUnmergedV1 = env.data
        current = await store.get_ticket(session, e.ticket_id, for_update=True)
        if current is None or current.parent_ticket_id is None:
            return  # routing split it itself and routed it already
        now = datetime.now(UTC)
        await store.bump_duplicates(session, current.parent_ticket_id, -1, now)
        await store.update_ticket(session, e.ticket_id, now, parent_ticket_id=None)

    # -- 退单 review and 改派 ----------------------------------------------------------------------

    async def on_return_requested(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReturnRequestedV1 = env.data
        now = datetime.now(UTC)
        request = domain.ReturnRequest(e.ticket_id, e.unit_code or e.actor, e.reason_code, e.basis, e.at)
        loaded = await self.cache.get(session, env.tenant)
        directory = loaded.directory if loaded else None
        calendar = directory.calendar if directory else WorkCalendar()
        due: datetime | None = None
        gap: str | None = None
        try:
            # Close of business of the Nth working day after the request's day.
            due = calendar.add_working_days(e.at, self.returns.review_working_days)
        except CalendarGapError as exc:
            # Never a guessed deadline: the request waits for a dispatcher, and the gap is loud.
            gap = calendar_gap_reason(exc)
            log.error("return request for ticket %s has no review deadline: %s", e.ticket_id, gap)
            metrics.CALENDAR_GAPS.inc()
        request_id = await store.add_return_request(
            session, event_id=env.id, tenant=env.tenant, request=request, review_due_at=due, calendar_error=gap
        )
        if request_id is None:
            return
        ticket = await store.get_ticket(session, e.ticket_id, for_update=True)
        await store.update_ticket(session, e.ticket_id, now, status="return_requested")
        metrics.RETURNS.labels(unit_label(directory, request.unit_code), "requested").inc()
        verdict = domain.auto_review(request, ticket, directory, loaded.index if loaded else None, now)
        if verdict is not None:
            make: MakeEnvelope = lambda data: env.caused(data, source="routing")  # noqa: E731
            await self._resolve_return(session, env.tenant, request_id, request, ticket, verdict, loaded, now, make)

    async def _resolve_return(
        self,
        session: AsyncSession,
        tenant: str,
        request_id: int,
        request: domain.ReturnRequest,
        ticket: domain.OpenTicket | None,
        verdict: domain.Verdict,
        loaded: Loaded | None,
        now: datetime,
        make: MakeEnvelope,
        *,
        assignment: domain.Decision | None = None,
    ) -> None:
        """Apply a review: the audit row and ``dispatch.return_reviewed``, then on approval 改派."""
        await store.resolve_return_request(
            session, request_id, approved=verdict.approved, reviewer=verdict.reviewer, reason=verdict.reason, now=now
        )
        outcome = "return_approved" if verdict.approved else "return_rejected"
        trail = (
            f"return: {request.unit_code} 申请退单（{request.reason_code}：{request.basis}）",
            f"review: {'同意' if verdict.approved else '驳回'}（{verdict.reviewer}）：{verdict.reason}",
        )
        await self._record(
            session,
            ticket_id=request.ticket_id,
            tenant=tenant,
            outcome=outcome,
            event=domain.review_event(request, verdict, now),
            trail=trail,
            now=now,
            make=make,
            directory_version=loaded.directory.version if loaded else None,
            reason_code=verdict.reviewer,
        )
        directory = loaded.directory if loaded else None
        metrics.RETURNS.labels(
            unit_label(directory, request.unit_code), "approved" if verdict.approved else "rejected"
        ).inc()
        if not verdict.approved:
            await store.update_ticket(session, request.ticket_id, now, status="accepted")
            return
        if ticket is not None:
            returned = [*dict.fromkeys((*ticket.returned_by, request.unit_code))]
            await store.update_ticket(session, request.ticket_id, now, returned_by=returned, unit_code=None)
        decision = assignment or domain.reroute(
            request.ticket_id,
            ticket,
            request.unit_code,
            directory,
            loaded.index if loaded else None,
            now,
            self.returns,
            min_confidence=self.min_confidence,
        )
        await self._apply_decision(
            session, tenant, decision, loaded, now, make, outcome="rerouted" if decision.assigned else None
        )
        metrics.REROUTES.labels(
            unit_label(directory, request.unit_code), "assigned" if decision.assigned else "manual"
        ).inc()

    async def expire_returns(self, session: AsyncSession, now: datetime, *, limit: int = 100) -> int:
        """Decide every request whose review window has passed (:func:`domain.timeout_verdict`)."""
        rows = await store.overdue_return_requests(session, now, limit)
        for row in rows:
            request = store.as_request(row)
            ticket = await store.get_ticket(session, request.ticket_id, for_update=True)
            loaded = await self.cache.get(session, row.tenant)
            make = api_envelopes(row.tenant, request.ticket_id, str(row.event_id))
            verdict = domain.timeout_verdict(self.returns)
            await self._resolve_return(session, row.tenant, row.id, request, ticket, verdict, loaded, now, make)
        return len(rows)

    # -- dispatcher commands (HTTP) ---------------------------------------------------------------

    async def _ticket(self, session: AsyncSession, tenant: str, ticket_id: uuid.UUID) -> domain.OpenTicket:
        ticket = await store.get_ticket(session, ticket_id, for_update=True)
        if ticket is None or ticket.ticket.tenant != tenant:  # never across tenants
            raise domain.Refused("ticket_not_found", "路由服务中没有该工单")
        return ticket

    async def _directory(self, session: AsyncSession, tenant: str) -> Loaded:
        loaded = await self.cache.get(session, tenant)
        if loaded is None:
            raise domain.Refused("no_directory", "该区划尚未导入网格与派单目录")
        return loaded

    async def manual_dispatch(
        self,
        session: AsyncSession,
        tenant: str,
        ticket_id: uuid.UUID,
        *,
        unit_code: str,
        co_unit_codes: Sequence[str],
        dispatcher: str,
        sla_policy_key: str | None,
        correlation_id: str,
        reassign: bool = False,
    ) -> DispatchAssignedV1:
        """派单 from the manual queue, or (``reassign``) 改派 of a dispatched ticket not yet signed for."""
        ticket = await self._ticket(session, tenant, ticket_id)
        allowed = {"dispatched"} if reassign else {"awaiting_manual"}
        if ticket.status not in allowed:
            code = "not_dispatched" if reassign else "not_in_manual_queue"
            message = "只能改派已派出且未签收的工单" if reassign else "该工单不在人工派单队列中"
            raise domain.Refused(code, message, {"status": ticket.status})
        if reassign and ticket.unit_code == unit_code:
            raise domain.Refused("same_unit", "改派的单位与当前承办单位相同")
        loaded = await self._directory(session, tenant)
        now = datetime.now(UTC)
        decision = domain.manual_assignment(
            ticket.ticket,
            loaded.directory,
            loaded.index,
            now,
            unit_code=unit_code,
            co_unit_codes=co_unit_codes,
            dispatcher=dispatcher,
            sla_policy_key=sla_policy_key,
            exclude_units=frozenset(ticket.returned_by),
        )
        make = api_envelopes(tenant, ticket_id, correlation_id)
        await self._apply_decision(
            session, tenant, decision, loaded, now, make, outcome="reassigned" if reassign else "manual"
        )
        metrics.DISPATCHER_ACTIONS.labels("reassign" if reassign else "dispatch").inc()
        assert isinstance(decision.event, DispatchAssignedV1)
        return decision.event

    async def merge(
        self,
        session: AsyncSession,
        tenant: str,
        ticket_id: uuid.UUID,
        *,
        parent_ticket_id: uuid.UUID,
        dispatcher: str,
        correlation_id: str,
    ) -> DispatchDuplicateFoundV1:
        """并单 by hand: a ticket still waiting for dispatch joins an open ticket of the same tenant."""
        if parent_ticket_id == ticket_id:
            raise domain.Refused("merge_into_self", "不能把工单并入自身")
        child = await self._ticket(session, tenant, ticket_id)
        parent = await self._ticket(session, tenant, parent_ticket_id)
        if child.status != "awaiting_manual":
            raise domain.Refused("not_in_manual_queue", "只能合并人工派单队列中的工单", {"status": child.status})
        if not parent.is_open_root:
            raise domain.Refused("parent_not_open", "主工单已办结或本身是被合并的子单", {"status": parent.status})
        now = datetime.now(UTC)
        a, b = child.ticket.location, parent.ticket.location
        event = DispatchDuplicateFoundV1(
            ticket_id=ticket_id,
            parent_ticket_id=parent_ticket_id,
            distance_m=round(domain.distance_m(a, b), 1) if a and b else None,
            rule=f"manual:{dispatcher}",
            decided_at=now,
        )
        trail = (f"manual: 派单员 {dispatcher} 将工单并入 {parent.ticket_no}",)
        await self._merge(
            session, tenant, event, trail, now, api_envelopes(tenant, ticket_id, correlation_id), how="manual"
        )
        metrics.DISPATCHER_ACTIONS.labels("merge").inc()
        return event

    async def unmerge(
        self, session: AsyncSession, tenant: str, ticket_id: uuid.UUID, *, dispatcher: str, correlation_id: str
    ) -> domain.Decision:
        """撤销并单: the child leaves its parent and is routed on its own, in the same transaction."""
        child = await self._ticket(session, tenant, ticket_id)
        if child.status != "merged" or child.parent_ticket_id is None:
            raise domain.Refused("not_merged", "该工单不是被合并的子单", {"status": child.status})
        now = datetime.now(UTC)
        make = api_envelopes(tenant, ticket_id, correlation_id)
        event = DispatchUnmergedV1(
            ticket_id=ticket_id, former_parent_ticket_id=child.parent_ticket_id, dispatcher=dispatcher, decided_at=now
        )
        await store.bump_duplicates(session, child.parent_ticket_id, -1, now)
        await store.update_ticket(session, ticket_id, now, status="routing", parent_ticket_id=None)
        trail = (f"manual: 派单员 {dispatcher} 撤销并单（原主单 {child.parent_ticket_id}），单独派单",)
        await self._record(
            session,
            ticket_id=ticket_id,
            tenant=tenant,
            outcome="unmerged",
            event=event,
            trail=trail,
            now=now,
            make=make,
        )
        loaded = await self.cache.get(session, tenant)
        decision = self._decide(child.ticket, loaded, now)
        await self._apply_decision(session, tenant, decision, loaded, now, make)
        metrics.DISPATCHER_ACTIONS.labels("unmerge").inc()
        return decision

    async def review_return(
        self,
        session: AsyncSession,
        tenant: str,
        request_id: int,
        *,
        approved: bool,
        dispatcher: str,
        reason: str,
        unit_code: str | None,
        co_unit_codes: Sequence[str],
        correlation_id: str,
    ) -> domain.Verdict:
        """A dispatcher's 退单审核 inside the window; approving may name the unit for 改派."""
        row = await store.get_return_request(session, request_id, for_update=True)
        if row is None or row.tenant != tenant:
            raise domain.Refused("return_not_found", "没有该退单申请")
        if row.status != "pending":
            raise domain.Refused(
                "return_already_reviewed", "该退单申请已审核", {"status": row.status, "reviewer": row.reviewer}
            )
        if unit_code is not None and not approved:
            raise domain.Refused("unit_without_approval", "驳回退单时不能指定改派单位")
        request = store.as_request(row)
        ticket = await store.get_ticket(session, request.ticket_id, for_update=True)
        loaded = await self.cache.get(session, tenant)
        now = datetime.now(UTC)
        assignment = None
        if unit_code is not None:
            if ticket is None or loaded is None:
                raise domain.Refused("reroute_unavailable", "缺少工单或派单目录数据，无法指定改派单位")
            assignment = domain.manual_assignment(
                ticket.ticket,
                loaded.directory,
                loaded.index,
                now,
                unit_code=unit_code,
                co_unit_codes=co_unit_codes,
                dispatcher=dispatcher,
                exclude_units=frozenset((*ticket.returned_by, request.unit_code)),
            )
        verdict = domain.Verdict(approved, dispatcher, reason)
        make = api_envelopes(tenant, request.ticket_id, correlation_id)
        await self._resolve_return(
            session, tenant, request_id, request, ticket, verdict, loaded, now, make, assignment=assignment
        )
        metrics.DISPATCHER_ACTIONS.labels("review_return").inc()
        return verdict


async def import_directory(
    session: AsyncSession,
    *,
    tenant: str,
    grids: dict[str, Any],
    bundle: dict[str, Any],
    imported_by: str,
    correlation_id: str | None = None,
    crs: Crs = "wgs84",
) -> tuple[int | None, ValidationReport]:
    """Check and store a new directory version and publish ``directory.version_published`` with it;
    nothing is stored or published when the check finds errors. Grids drawn in GCJ-02 or BD-09
    (``crs``) are converted and stored as WGS-84."""
    grids = geojson_to_wgs84(grids, crs) if isinstance(grids, dict) else grids
    named = bundle.get("tenant") if isinstance(bundle, dict) else None
    if named not in (None, "", tenant):
        issue = Issue("error", "tenant_mismatch", f"目录文件的租户 {named} 与请求的租户 {tenant} 不一致", str(named))
        return None, ValidationReport((issue,))
    loaded, report = build_directory(tenant, 0, grids, bundle)
    if loaded is None or not report.ok:
        return None, report
    warnings = [{"code": i.code, "message": i.message, "subject": i.subject} for i in report.warnings]
    version = await store.add_version(
        session, tenant=tenant, grids=grids, bundle=bundle, report=warnings, imported_by=imported_by
    )
    d = loaded.directory
    event = DirectoryVersionPublishedV1(
        tenant=tenant,
        version=version,
        grids=len(d.grids),
        units=len(d.units),
        rules=len(d.rules),
        imported_by=imported_by,
        published_at=datetime.now(UTC),
    )
    envelope = Envelope[Any](
        source="routing", tenant=tenant, subject=tenant, correlation_id=correlation_id or str(uuid.uuid4()), data=event
    )
    await outbox.add(session, store.outbox, [envelope])
    return version, report
