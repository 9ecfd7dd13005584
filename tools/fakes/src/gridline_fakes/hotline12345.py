"""Fake 12345 hotline platform: the callback endpoint notify pushes order status and results to.

No national 12345 exchange standard exists (domain reference §7.2), so the wire format is the mirror
of Gridline's own inbound scheme for 12345 pushes (intake ``auth.py``)::

    POST <callback url>
    Content-Type: application/json
    X-Api-Key: <the id the platform knows Gridline by>
    X-Timestamp: <unix seconds>
    X-Nonce: <8-64 ASCII chars, unique per request>
    X-Signature: hex(HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + raw body))
    Idempotency-Key: <one per (event, order); the same on every retry>

What it checks, answering like a platform gateway (HTTP 401/400 with ``{"code": <non-zero>, "msg": …}``):
unknown key → 401 ``4011``; missing/garbled headers → 401 ``4010``; timestamp outside ±``max_skew_s``
(default 300 s) → 401 ``4012`` (stale); a nonce seen within twice the window → 401 ``4013``
(replayed); signature mismatch → 401 ``4014``; no ``Idempotency-Key`` or a body that is not a JSON
object with ``order_no`` → 400 ``4001``. The signature is recomputed here by this module's own code,
never notify's.

Acknowledgement: HTTP 200 ``{"code": 0, "msg": "成功"}``. A request whose ``Idempotency-Key`` was
acknowledged before is acknowledged again (``"duplicate": true``) and **not** recorded twice, which
is what makes a retry after a lost answer harmless.

Control endpoints (not a platform's): ``GET /_fake/received`` lists first-time accepted pushes in
arrival order (``order_no``, ``sequence``, ``status``, ``idempotency_key``, the body); ``GET
/_fake/stats`` counts requests, duplicates, rejections and out-of-order arrivals (a ``sequence``
lower than one already accepted for the same order); ``POST /_fake/faults`` queues a fault for the
next ``count`` signed requests: ``server_error`` (HTTP 503), ``nack`` (HTTP 200 with ``code`` 5000,
not an acknowledgement), ``delay`` (accepted and recorded, answered after ``delay_s``: a client
timing out must retry with the same key), ``stall`` (wait ``delay_s``, then 503 without recording);
``POST /_fake/reset`` clears everything.

Run: ``python -m gridline_fakes hotline12345 --port 18005 [--key ID:SECRET]``
(env ``GRIDLINE_FAKE_HOTLINE12345_KEYS="id:secret,…"``; default ``gridline`` → ``test-hotline-secret-0001``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

DEFAULT_KEYS: dict[str, str] = {"gridline": "test-hotline-secret-0001"}
DEFAULT_MAX_SKEW_S = 300
ACK: dict[str, Any] = {"code": 0, "msg": "成功"}


class Fault(BaseModel):
    kind: Literal["server_error", "nack", "delay", "stall"]
    count: int = Field(default=1, ge=1)
    delay_s: float = Field(default=0.0, ge=0)


class Rejected(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def expected_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Recomputed independently of notify's signer: HMAC-SHA256 over ``ts\\nnonce\\n`` + raw body."""
    message = timestamp.encode("ascii") + b"\n" + nonce.encode("ascii") + b"\n" + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclass
class Platform:
    keys: Mapping[str, str]
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    received: list[dict[str, Any]] = field(default_factory=list)
    acked_keys: set[str] = field(default_factory=set)
    nonces: dict[str, float] = field(default_factory=dict)
    last_sequence: dict[str, int] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    stats: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "accepted": 0, "duplicates": 0, "rejected": 0, "out_of_order": 0}
    )

    def reset(self) -> None:
        self.received.clear()
        self.acked_keys.clear()
        self.nonces.clear()
        self.last_sequence.clear()
        self.faults.clear()
        for k in self.stats:
            self.stats[k] = 0

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        key, ts, nonce, sig = (headers.get(h) for h in ("x-api-key", "x-timestamp", "x-nonce", "x-signature"))
        if not key or not ts or not nonce or not sig:
            raise Rejected(401, 4010, "缺少签名头")
        secret = self.keys.get(key)
        if secret is None:
            raise Rejected(401, 4011, "未知的接入方")
        try:
            at = int(ts)
        except ValueError as exc:
            raise Rejected(401, 4010, "时间戳格式错误") from exc
        if abs(now - at) > self.max_skew_s:
            raise Rejected(401, 4012, "请求已过期")
        if not 8 <= len(nonce) <= 64 or not nonce.isascii():
            raise Rejected(401, 4010, "随机串格式错误")
        if not hmac.compare_digest(expected_signature(secret, ts, nonce, body), sig.lower()):
            raise Rejected(401, 4014, "签名错误")
        # Forget nonces older than twice the window (a request that old is stale anyway).
        horizon = now - 2 * self.max_skew_s
        for n in [n for n, seen in self.nonces.items() if seen < horizon]:
            del self.nonces[n]
        if nonce in self.nonces:
            raise Rejected(401, 4013, "重复的请求")
        self.nonces[nonce] = now
        return key

    def accept(self, api_key: str, idempotency_key: str | None, body: bytes) -> dict[str, Any]:
        if not idempotency_key:
            raise Rejected(400, 4001, "缺少 Idempotency-Key")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise Rejected(400, 4001, "报文不是 JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("order_no"), str):
            raise Rejected(400, 4001, "缺少 order_no")
        if idempotency_key in self.acked_keys:
            self.stats["duplicates"] += 1
            return {**ACK, "duplicate": True}
        order = payload["order_no"]
        seq = payload.get("sequence")
        if isinstance(seq, int):
            if seq < self.last_sequence.get(order, -1):
                self.stats["out_of_order"] += 1
            self.last_sequence[order] = max(seq, self.last_sequence.get(order, -1))
        self.acked_keys.add(idempotency_key)
        self.stats["accepted"] += 1
        self.received.append(
            {
                "api_key": api_key,
                "idempotency_key": idempotency_key,
                "order_no": order,
                "sequence": seq,
                "status": payload.get("status"),
                "event": payload.get("event"),
                "body": payload,
                "received_at": time.time(),
            }
        )
        logger.info("accepted %s for order %s (%s)", idempotency_key, order, payload.get("status"))
        return dict(ACK)


def _reply(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def create_app(keys: Mapping[str, str] | None = None, *, max_skew_s: float = DEFAULT_MAX_SKEW_S) -> FastAPI:
    platform = Platform(dict(keys or DEFAULT_KEYS), max_skew_s=max_skew_s)
    app = FastAPI(title="fake 12345 platform")
    app.state.platform = platform

    @app.post("/callback")
    @app.post("/callback/{rest:path}")
    async def callback(request: Request) -> JSONResponse:
        body = await request.body()
        platform.stats["requests"] += 1
        try:
            api_key = platform.verify(request.headers, body, time.time())
        except Rejected as r:
            platform.stats["rejected"] += 1
            return _reply(r.status, {"code": r.code, "msg": r.msg})
        fault = platform.faults[0] if platform.faults else None
        if fault is not None:
            fault.count -= 1
            if fault.count <= 0:
                platform.faults.popleft()
            if fault.kind == "server_error":
                return _reply(503, {"code": 5030, "msg": "服务不可用"})
            if fault.kind == "nack":
                return _reply(200, {"code": 5000, "msg": "系统繁忙，请稍后重试"})
            if fault.kind == "stall":
                await asyncio.sleep(fault.delay_s)
                return _reply(503, {"code": 5030, "msg": "服务不可用"})
        try:
            answer = platform.accept(api_key, request.headers.get("idempotency-key"), body)
        except Rejected as r:
            platform.stats["rejected"] += 1
            return _reply(r.status, {"code": r.code, "msg": r.msg})
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        return _reply(200, answer)

    @app.get("/_fake/received")
    async def received() -> list[dict[str, Any]]:
        return platform.received

    @app.get("/_fake/stats")
    async def stats() -> dict[str, int]:
        return platform.stats

    @app.post("/_fake/faults")
    async def add_fault(fault: Fault) -> list[Fault]:
        platform.faults.append(fault)
        return list(platform.faults)

    @app.delete("/_fake/faults")
    async def clear_faults() -> list[Fault]:
        platform.faults.clear()
        return []

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        platform.reset()
        return {"ok": True}

    return app
