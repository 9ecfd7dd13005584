"""escalation's composition root: settings → engine → handlers, timer, API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_contracts.topics import TICKETS
from gridline_messaging.runtime import MessagingRuntime

from . import store
from .api import build_router
from .deadline_timer import DeadlineTimer
from .handlers import Escalation
from .settings import EscalationSettings
from .timer import Timer


def create_app(settings: EscalationSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    escalation = Escalation(timezone=settings.timezone)

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
            handlers=escalation.handlers(),
        )
        app.state.sessions = sessions
        app.state.timezone = settings.timezone
        app.state.escalation = escalation
        app.state.runtime = runtime
        await runtime.start()
        if "worker" in settings.roles:
            timer = Timer(
                sessions=sessions,
                escalation=escalation,
                interval_s=settings.timer_interval_s,
                batch_max=settings.timer_batch_max,
                rate_gauge_k=settings.rate_gauge_k,
                rate_gauge_interval_s=settings.rate_gauge_interval_s,
            )
            runtime.tasks.start("timer", timer.run(), timer.stop)
            deadlines = DeadlineTimer(
                sessions=sessions,
                escalation=escalation,
                interval_s=settings.deadline_interval_s,
                batch_max=settings.timer_batch_max,
            )
            runtime.tasks.start("deadlines", deadlines.run(), deadlines.stop)
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(title="Gridline escalation", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())
    if "api" in settings.roles:
        app.include_router(build_router())
    return app
