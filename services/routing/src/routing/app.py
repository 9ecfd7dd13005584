"""routing's composition root: settings → engine → directory cache → handlers and API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_contracts.intake import TicketReceivedV1
from gridline_contracts.topics import TICKETS
from gridline_messaging.runtime import MessagingRuntime

from . import store
from .api import build_router
from .handlers import DirectoryCache, Routing
from .settings import RoutingSettings


def create_app(settings: RoutingSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    routing = Routing(cache=DirectoryCache(settings.directory_refresh_s), min_confidence=settings.min_confidence)

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
            handlers={TicketReceivedV1: routing.on_ticket_received},
        )
        app.state.sessions = sessions
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(title="Gridline routing", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())
    if "api" in settings.roles:
        app.include_router(build_router())
    return app
