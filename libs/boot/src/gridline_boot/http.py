"""HTTP plumbing every service shares: health, readiness, metrics, correlation ids and error shape.

Errors always have the shape ``{"error": {"code", "message", "details"}}`` with a stable
snake_case ``code`` that clients can branch on and a human ``message`` (Chinese by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logging import bind
from .outage import is_outage

log = logging.getLogger(__name__)

ReadinessCheck = tuple[str, Callable[[], Awaitable[None]]]

HTTP_LATENCY = Histogram(
    "gridline_http_request_duration_seconds",
    "HTTP request latency by route template and status class.",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class ApiError(Exception):
    """An expected failure with a stable code; raised by api.py, rendered by the handler below."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


_STATUS_CODES = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthorized", "未认证或认证失败"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not_found", "资源不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    409: ("conflict", "状态冲突"),
    413: ("payload_too_large", "请求体过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "problem": e.get("msg"),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse(error_body("invalid_request", "请求参数校验失败", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _STATUS_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
        return JSONResponse(error_body(code, message), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug or an outage, never bad input: log it with the correlation id, answer 503 so
        # clients retry (with their Idempotency-Key) instead of treating it as a verdict.
        log.exception("unhandled error")
        return JSONResponse(error_body("temporarily_unavailable", "服务暂时不可用，请稍后重试"), status_code=503)


_OUTAGE_BODY = json.dumps(
    error_body("temporarily_unavailable", "服务暂时不可用，请稍后重试"), ensure_ascii=False, separators=(",", ":")
).encode()


class CorrelationMiddleware:
    """Correlation id (request header or a new one, bound for logs, echoed in the response), latency
    by route template, and a dependency outage answered 503 + Retry-After instead of a stack trace.

    Pure ASGI on purpose: Starlette's BaseHTTPMiddleware runs the app in a separate task behind
    memory streams, ~1–3 ms of CPU per request on the benchmark machine (docs/performance.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = _header(scope, b"x-correlation-id") or _header(scope, b"x-request-id") or str(uuid.uuid4())
        bind(correlation_id=cid)
        scope.setdefault("state", {})["correlation_id"] = cid  # request.state.correlation_id
        cid_header = (b"x-correlation-id", cid.encode("latin-1", "replace"))
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), cid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started or not is_outage(exc):
                raise  # a bug: the catch-all handler logs it with its traceback and answers 503
            # PostgreSQL or the network is gone for a moment: one line per request, not a stack trace.
            log.warning("%s %s: dependency unavailable (%r)", scope["method"], scope["path"], exc)
            status = 503
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_OUTAGE_BODY)).encode()),
                        (b"retry-after", b"5"),
                        cid_header,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _OUTAGE_BODY})
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(scope["method"], template, f"{status // 100}xx").observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1") or None
    return None


def install_observability(app: FastAPI, checks: Callable[[], Sequence[ReadinessCheck]]) -> None:
    """/healthz (process alive), /readyz (dependencies answer), /metrics, and request correlation."""

    app.add_middleware(CorrelationMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks():
            try:
                await asyncio.wait_for(check(), timeout=3)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failed: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": results}, status_code=200 if ok else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)
