"""routing's composition root: settings → engine → directory cache → handlers, return timer and API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_boot.staff_auth import StaffTokenVerifier
from gridline_contracts.envelope import EventData
from gridline_contracts.intake import (
    TicketArchivedV1,
    TicketClosedV1,
    TicketDispatchedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketReopenedV1,
    TicketReturnRequestedV1,
    TicketSignedV1,
    TicketUnmergedV1,
)
from gridline_contracts.registry import lookup
from gridline_contracts.topics import TICKETS
from gridline_messaging.consumer import Handler
from gridline_messaging.outage import is_infrastructure_error
from gridline_messaging.runtime import MessagingRuntime

from . import store
from .api import ROLES, build_router
from .directory import DuplicatePolicy
from .domain import ReturnPolicy
from .handlers import DirectoryCache, Routing
from .settings import RoutingSettings

log = logging.getLogger(__name__)


def build_routing(settings: RoutingSettings) -> Routing:
    return Routing(
        cache=DirectoryCache(settings.directory_refresh_s),
        min_confidence=settings.min_confidence,
        duplicates=DuplicatePolicy(
            radius_m=settings.duplicate_radius_m,
            window_h=settings.duplicate_window_h,
            same_address=settings.duplicate_same_address,
            enabled=settings.duplicates_enabled,
            same_caller=settings.duplicate_same_caller,
            require_same_address=settings.duplicate_require_same_address,
        ),
        returns=ReturnPolicy(
            review_working_days=settings.return_review_working_days,
            timeout_approves=settings.return_timeout_approves,
            max_reroutes=settings.max_reroutes,
        ),
    )


def staff_tokens(settings: RoutingSettings) -> StaffTokenVerifier | None:
    if settings.staff_token_keys is None:
        return None
    audiences = [a.strip() for a in settings.staff_token_audiences.split(",") if a.strip()]
    return StaffTokenVerifier(settings.staff_token_keys.get_secret_value(), audiences=audiences, roles=ROLES)


def handler_table(routing: Routing) -> dict[type[EventData], Handler]:
    table: dict[type[EventData], Handler] = {
        TicketReceivedV1: routing.on_ticket_received,
        TicketDispatchedV1: routing.on_ticket_dispatched,
        TicketSignedV1: partial(routing.on_ticket_status, status="accepted"),
        TicketReopenedV1: partial(routing.on_ticket_status, status="accepted"),
        TicketClosedV1: partial(routing.on_ticket_status, status="closed"),
        TicketArchivedV1: partial(routing.on_ticket_status, status="closed"),
        TicketMergedV1: routing.on_ticket_merged,
        TicketUnmergedV1: routing.on_ticket_unmerged,
        TicketReturnRequestedV1: routing.on_return_requested,
    }
    # 不予受理 takes a ticket out of the manual queue; looked up by wire identity so routing does not
    # depend on when intake publishes that event class.
    rejected = lookup("ticket.rejected", 1)
    if rejected is not None:
        table[rejected] = partial(routing.on_ticket_status, status="closed")
    return table


class ReturnTimer:
    """Applies the timeout rule to 退单 requests whose review window has passed (worker role).

    Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several workers never decide one request twice.
    """

    def __init__(self, routing: Routing, sessions: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        self.routing = routing
        self.sessions = sessions
        self.interval_s = interval_s
        self._stop = asyncio.Event()

    async def tick(self) -> int:
        async with self.sessions() as s, s.begin():
            return await self.routing.expire_returns(s, datetime.now(UTC))

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception as exc:
                # The transaction rolled back: nothing was half-decided; try again next tick.
                if is_infrastructure_error(exc):
                    log.warning("return timer: database unavailable (%r); retrying", exc)
                else:
                    log.exception("return timer failed; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)

    async def stop(self) -> None:
        self._stop.set()


def create_app(settings: RoutingSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    routing = build_routing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, schema=store.SCHEMA)
        sessions = session_factory(engine)
        runtime = MessagingRuntime(
            settings,
            engine=engine,
            sessions=sessions,
            outbox=store.outbox,
            inbox=store.inbox,
            topics=[TICKETS.name],
            handlers=handler_table(routing),
        )
        app.state.sessions = sessions
        app.state.runtime = runtime
        app.state.routing = routing
        await runtime.start()
        if "worker" in settings.roles:
            timer = ReturnTimer(routing, sessions, settings.return_timer_interval_s)
            runtime.tasks.start("return-timer", timer.run(), timer.stop)
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(title="Gridline routing", version="1", lifespan=lifespan)
    app.state.staff_tokens = staff_tokens(settings)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())
    if "api" in settings.roles:
        app.include_router(build_router())
    return app
