"""notify's composition root: settings → engine → provider client → handlers, sender, API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import TicketReceivedV1
from gridline_contracts.topics import SLA, TICKETS
from gridline_messaging.runtime import MessagingRuntime
from gridline_pii import Keyring

from . import store
from .api import build_router
from .handlers import Handlers
from .providers.aliyun_sms import AliyunSmsClient
from .providers.base import SmsProvider
from .providers.tencent_sms import TencentSmsClient
from .sender import Sender
from .settings import NotifySettings


def make_provider(settings: NotifySettings, http: httpx.AsyncClient) -> SmsProvider:
    secret = settings.sms_access_key_secret.get_secret_value()
    if settings.sms_provider == "tencent":
        return TencentSmsClient(
            http,
            secret_id=settings.sms_access_key_id,
            secret_key=secret,
            sdk_app_id=settings.sms_sdk_app_id,
            base_url=settings.sms_provider_base_url,
        )
    return AliyunSmsClient(
        http,
        access_key_id=settings.sms_access_key_id,
        access_key_secret=secret,
        base_url=settings.sms_provider_base_url,
    )


def create_app(settings: NotifySettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    pii = Keyring.from_spec(settings.pii_key.get_secret_value())
    transit = Keyring.from_spec(settings.pii_transit_key.get_secret_value())
    handlers = Handlers(pii=pii, transit=transit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, schema=store.SCHEMA)
        sessions = session_factory(engine)
        http = httpx.AsyncClient(timeout=settings.sms_timeout_s)
        runtime = MessagingRuntime(
            settings,
            engine=engine,
            sessions=sessions,
            outbox=store.outbox,
            inbox=store.inbox,
            topics=[TICKETS.name, SLA.name],
            handlers={TicketReceivedV1: handlers.on_ticket_received, SlaClockStartedV1: handlers.on_clock_started},
        )
        app.state.sessions = sessions
        app.state.runtime = runtime
        await runtime.start()
        if "worker" in settings.roles:
            sender = Sender(
                sessions=sessions,
                provider=make_provider(settings, http),
                pii=pii,
                sign_name=settings.sms_sign_name,
                templates=settings.sms_templates,
                batch_max=settings.sender_batch_max,
                max_attempts=settings.sender_max_attempts,
                call_timeout_s=settings.sms_timeout_s,
            )
            runtime.tasks.start("sender", sender.run(), sender.stop)
        try:
            yield
        finally:
            await runtime.stop()
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="Gridline notify", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())

    app.state.pii = pii
    if "api" in settings.roles:
        app.include_router(build_router())
    return app
