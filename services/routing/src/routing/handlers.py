"""Routing use cases: the directory cache, dispatching new tickets, importing directory versions."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import TicketReceivedV1
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from gridline_messaging import outbox

from . import domain, metrics, store
from .directory import Directory, ValidationReport, assemble, load_bundle, load_geojson
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


class Routing:
    def __init__(self, *, cache: DirectoryCache, min_confidence: float) -> None:
        self.cache = cache
        self.min_confidence = min_confidence

    async def on_ticket_received(self, session: AsyncSession, env: Envelope[Any]) -> None:
        e: TicketReceivedV1 = env.data
        now = datetime.now(UTC)
        loaded = await self.cache.get(session, env.tenant)
        ticket = domain.TicketToRoute.from_event(e, tenant=env.tenant)
        if loaded is None:
            decision = domain.Decision(
                event=DispatchNeedsManualV1(
                    ticket_id=e.ticket_id,
                    reason_code="no_directory",
                    reason="该区划尚未导入网格与派单目录",
                    decided_at=now,
                ),
                trail=(f"租户 {env.tenant} 没有目录版本",),
            )
        else:
            decision = domain.decide(ticket, loaded.directory, loaded.index, now, min_confidence=self.min_confidence)
        ev = decision.event
        assigned = isinstance(ev, DispatchAssignedV1)
        await store.add_decision(
            session,
            ticket_id=e.ticket_id,
            tenant=env.tenant,
            outcome="assigned" if assigned else "needs_manual",
            unit_code=ev.unit_code if isinstance(ev, DispatchAssignedV1) else None,
            rule_id=ev.rule_id if isinstance(ev, DispatchAssignedV1) else None,
            reason_code=decision.reason_code,
            directory_version=loaded.directory.version if loaded else None,
            trail=list(decision.trail),
            event=ev.model_dump(mode="json"),
            decided_at=now,
        )
        await outbox.add(session, store.outbox, [env.caused(ev, source="routing")])
        metrics.DECISIONS.labels("assigned" if assigned else "needs_manual", decision.reason_code or "").inc()


async def import_directory(
    session: AsyncSession, *, tenant: str, grids: dict[str, Any], bundle: dict[str, Any], imported_by: str
) -> tuple[int | None, ValidationReport]:
    """Check and store a new directory version; nothing is stored when the check finds errors."""
    _, report = build_directory(tenant, 0, grids, bundle)
    if not report.ok:
        return None, report
    warnings = [{"code": i.code, "message": i.message, "subject": i.subject} for i in report.warnings]
    version = await store.add_version(
        session, tenant=tenant, grids=grids, bundle=bundle, report=warnings, imported_by=imported_by
    )
    return version, report
