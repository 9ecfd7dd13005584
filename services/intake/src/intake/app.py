"""intake's composition root: settings → engine → keyrings → handlers → FastAPI app and messaging loops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from gridline_contracts.topics import DISPATCH
from gridline_messaging.consumer import Handler
from gridline_messaging.runtime import MessagingRuntime
from gridline_pii import Keyring

from . import handlers, metrics, store
from .api import build_router
from .deps import Deps
from .settings import IntakeSettings

HANDLERS: dict[type, Handler] = {
    DispatchAssignedV1: handlers.on_dispatch_assigned,
    DispatchNeedsManualV1: handlers.on_dispatch_needs_manual,
}


def create_app(settings: IntakeSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    pii = Keyring.from_spec(settings.pii_key.get_secret_value())
    transit = Keyring.from_spec(settings.pii_transit_key.get_secret_value())

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
            topics=[DISPATCH.name],
            handlers=HANDLERS,
        )
        app.state.deps = Deps(
            sessions=sessions, pii=pii, transit=transit, metrics_received=lambda ch: metrics.RECEIVED.labels(ch).inc()
        )
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(title="Gridline intake", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())

    if "api" in settings.roles:
        app.include_router(build_router())
    return app
