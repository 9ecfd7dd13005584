"""Unsigned citizen submissions (POST /v1/reports without an integration signature) are allowed and
limited per phone, per openid and per client IP, in PostgreSQL, with 429 + Retry-After; a signed
mini-program backend is not limited per IP (one address for all its users)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from intake.access import client_ip
from intake.app import create_app
from intake.auth import signature

from .conftest import TENANT, make_settings
from .test_photos import png


@pytest.fixture(scope="module")
async def limited(stack: Any, intake_db: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        stack,
        intake_db,
        reports_per_ip_per_hour=3,
        reports_per_phone_per_hour=2,
        reports_per_openid_per_hour=2,
        client_ip_header="X-Real-IP",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


def body(**kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "tenant": TENANT,
        "category_code": "200102",
        "description": "路边垃圾无人清理",
        "address": "文三路 8 号",
        "phone": f"139{uuid.uuid4().int % 10**8:08d}",
    }
    b.update(kw)
    return b


def ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited" and "频繁" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 3601


async def test_per_ip(limited: httpx.AsyncClient) -> None:
    a, b = ip(), ip()
    for _ in range(3):
        r = await limited.post("/v1/reports", json=body(), headers={"X-Real-IP": a})
        assert r.status_code == 201, r.text
    assert_limited(await limited.post("/v1/reports", json=body(), headers={"X-Real-IP": a}))
    # Anonymous reports from that address are limited too; another address is not.
    assert_limited(await limited.post("/v1/reports", json=body(phone=None, anonymous=True), headers={"X-Real-IP": a}))
    assert (await limited.post("/v1/reports", json=body(), headers={"X-Real-IP": b})).status_code == 201
    # The multipart endpoint shares the same counters.
    r = await limited.post(
        "/v1/reports/with-photos",
        data={"report": json.dumps(body(), ensure_ascii=False)},
        files=[("photos", ("p.png", png(), "image/png"))],
        headers={"X-Real-IP": a},
    )
    assert_limited(r)


async def test_per_phone_across_addresses(limited: httpx.AsyncClient) -> None:
    phone = f"137{uuid.uuid4().int % 10**8:08d}"
    for _ in range(2):
        r = await limited.post("/v1/reports", json=body(phone=phone), headers={"X-Real-IP": ip()})
        assert r.status_code == 201, r.text
    assert_limited(await limited.post("/v1/reports", json=body(phone=phone), headers={"X-Real-IP": ip()}))


async def test_per_openid_even_when_anonymous(limited: httpx.AsyncClient) -> None:
    openid = "oWx-" + uuid.uuid4().hex
    anon = {"phone": None, "anonymous": True, "openid": openid}
    for _ in range(2):
        r = await limited.post("/v1/reports", json=body(**anon), headers={"X-Real-IP": ip()})
        assert r.status_code == 201, r.text
    assert_limited(await limited.post("/v1/reports", json=body(**anon), headers={"X-Real-IP": ip()}))


async def test_signed_backend_is_not_limited_per_ip(limited: httpx.AsyncClient) -> None:
    a = ip()
    for _ in range(3):
        assert (await limited.post("/v1/reports", json=body(), headers={"X-Real-IP": a})).status_code == 201
    assert_limited(await limited.post("/v1/reports", json=body(), headers={"X-Real-IP": a}))
    for _ in range(3):  # the same address, signed by the mini-program backend
        raw = json.dumps(body(), ensure_ascii=False).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        headers = {
            "content-type": "application/json",
            "X-Real-IP": a,
            "X-Api-Key": "wx-mini",
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": signature("wx-mini-secret-0123456789", ts, nonce, raw),
        }
        r = await limited.post("/v1/reports", content=raw, headers=headers)
        assert r.status_code == 201, r.text


def test_client_ip_trusts_only_the_configured_header() -> None:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "headers": [(b"x-real-ip", b"203.0.113.9"), (b"x-forwarded-for", b"198.51.100.1, 10.0.0.1")],
        "client": ("10.0.0.2", 5555),
    }
    req = Request(scope)
    assert client_ip(req, None) == "10.0.0.2"  # a client-sent header means nothing unless configured
    assert client_ip(req, "X-Real-IP") == "203.0.113.9"
    assert client_ip(req, "X-Forwarded-For") == "198.51.100.1"
    assert client_ip(req, "X-Missing") == "10.0.0.2"
