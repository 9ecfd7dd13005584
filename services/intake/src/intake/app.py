"""intake's composition root: settings → engine → keyrings → handlers → FastAPI app and messaging loops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gridline_boot.db import create_engine, session_factory
from gridline_boot.http import error_body, install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_contracts.escalation import (
    SlaBreachedV1,
    SlaClockExtendedV1,
    SlaClockResumedV1,
    SlaClockStartedV1,
    SlaWarnedV1,
)
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchNeedsManualV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)
from gridline_contracts.topics import DISPATCH, SLA
from gridline_messaging.consumer import Handler
from gridline_messaging.runtime import MessagingRuntime
from gridline_pii import Keyring

from . import handlers, metrics, store
from .access import RateLimited
from .api import build_router
from .api_staff import build_staff_router
from .attachments import start_fetcher
from .auth import StaffTokens, parse_integrations
from .deps import Deps
from .hotline import build_hotline_router
from .inspection import build_inspection_router
from .open311 import build_open311_router, load_catalogue
from .settings import IntakeSettings
from .storage import LocalStorage, S3Storage, Storage
from .ticket_numbers import TicketNumbers

HANDLERS: dict[type, Handler] = {
    DispatchAssignedV1: handlers.on_dispatch_assigned,
    DispatchNeedsManualV1: handlers.on_dispatch_needs_manual,
    DispatchDuplicateFoundV1: handlers.on_duplicate_found,
    DispatchUnmergedV1: handlers.on_unmerged,
    DispatchReturnReviewedV1: handlers.on_return_reviewed,
    SlaClockStartedV1: handlers.on_clock_started,
    SlaClockExtendedV1: handlers.on_clock_moved,
    SlaClockResumedV1: handlers.on_clock_moved,
    SlaWarnedV1: handlers.on_warned,
    SlaBreachedV1: handlers.on_breached,
}


class BodyLimit:
    """Declared sizes are refused (413) before anything is read; chunked bodies are bounded by the
    endpoints' own limits (multipart uploads count bytes as they arrive). Pure ASGI: Starlette's
    BaseHTTPMiddleware costs ~1 ms of CPU per request (docs/performance.md)."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length: bytes | None = None
            multipart = False
            for k, v in scope["headers"]:
                if k == b"content-length":
                    length = v
                elif k == b"content-type":
                    multipart = v.startswith(b"multipart/")
            limit = self.max_upload_bytes if multipart else self.max_request_bytes
            if length is not None and (not length.isdigit() or int(length) > limit):
                response = JSONResponse(error_body("payload_too_large", f"请求体超过 {limit} 字节"), status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: IntakeSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    pii = Keyring.from_spec(settings.pii_key.get_secret_value())
    transit = Keyring.from_spec(settings.pii_transit_key.get_secret_value())
    tokens = StaffTokens(settings.staff_token_keys.get_secret_value()) if settings.staff_token_keys else None
    integrations = parse_integrations(settings.integrations.get_secret_value())
    storage: Storage = (
        S3Storage(
            settings.s3_bucket or "",
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
        )
        if settings.storage_backend == "s3"
        else LocalStorage(settings.storage_dir)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, schema=store.SCHEMA)
        sessions = session_factory(engine)
        # Its own connection: a block is taken while a report's session may already hold one of the
        # main pool's, so sharing that pool could leave every connection waiting for the allocator.
        counter_engine = create_engine(settings.database_url, pool_size=1, schema=store.SCHEMA)
        runtime = MessagingRuntime(
            settings,
            engine=engine,
            sessions=sessions,
            outbox=store.outbox,
            inbox=store.inbox,
            topics=[DISPATCH.name, SLA.name],
            handlers=HANDLERS,
        )
        app.state.deps = Deps(
            sessions=sessions,
            pii=pii,
            transit=transit,
            metrics_received=lambda ch: metrics.RECEIVED.labels(ch).inc(),
            staff_tokens=tokens,
            integrations=integrations,
            rules=settings.rules,
            max_skew=timedelta(seconds=settings.signature_max_skew_s),
            reports_per_phone_per_hour=settings.reports_per_phone_per_hour,
            reports_per_openid_per_hour=settings.reports_per_openid_per_hour,
            reports_per_ip_per_hour=settings.reports_per_ip_per_hour,
            client_ip_header=settings.client_ip_header,
            storage=storage,
            max_photo_bytes=settings.max_photo_bytes,
            max_photos=settings.max_photos,
            max_upload_bytes=settings.max_upload_bytes,
            ticket_numbers=TicketNumbers(counter_engine),
        )
        app.state.runtime = runtime
        await runtime.start()
        stop_fetcher = (
            start_fetcher(sessions, storage, settings.fetch_settings, settings.attachment_poll_s)
            if "worker" in settings.roles
            else None
        )
        try:
            yield
        finally:
            if stop_fetcher is not None:
                await stop_fetcher()
            await runtime.stop()
            await engine.dispose()
            await counter_engine.dispose()

    app = FastAPI(title="Gridline intake", version="1", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    app.add_middleware(
        BodyLimit, max_request_bytes=settings.max_request_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    install_observability(app, lambda: app.state.runtime.checks())

    if "api" in settings.roles:
        app.include_router(build_router())
        app.include_router(build_staff_router())
        app.include_router(build_hotline_router())
        app.include_router(build_inspection_router())
        app.include_router(build_open311_router(load_catalogue(settings.open311_catalogue)))
    return app
