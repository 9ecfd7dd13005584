"""The HTTP edge's error shape: bad input is a 4xx with a stable code, an outage a 503 with
Retry-After, a bug a 503 too (logged with its trace) — never a bare 500."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from gridline_boot.http import ApiError, install_error_handlers, install_observability


class Body(BaseModel):
    n: int


def app() -> FastAPI:
    a = FastAPI()
    install_error_handlers(a)
    install_observability(a, lambda: [])

    @a.get("/outage")
    async def outage() -> None:
        raise DBAPIError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))

    @a.get("/bug")
    async def bug() -> None:
        raise KeyError("oops")

    @a.get("/refused")
    async def refused() -> None:
        raise ApiError(409, "illegal_transition", "工单当前状态不允许该操作")

    @a.post("/body")
    async def body(b: Body) -> dict[str, int]:
        return {"n": b.n}

    return a


def test_an_outage_is_503_with_retry_after_and_a_stable_code() -> None:
    r = TestClient(app(), raise_server_exceptions=False).get("/outage")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"]["code"] == "temporarily_unavailable"
    assert r.headers["x-correlation-id"]


def test_a_bug_is_never_a_bare_500() -> None:
    r = TestClient(app(), raise_server_exceptions=False).get("/bug")
    assert r.status_code == 503 and r.json()["error"]["code"] == "temporarily_unavailable"
    assert "retry-after" not in r.headers


def test_expected_failures_and_bad_input_keep_their_codes() -> None:
    c = TestClient(app(), raise_server_exceptions=False)
    r = c.get("/refused")
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    r = c.post("/body", json={"n": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["details"][0]["field"] == "n"


def test_the_correlation_id_is_kept_and_echoed_and_latency_is_recorded_by_route_template() -> None:

    a = app()

    @a.get("/items/{n}")
    async def item(n: int, request: Request) -> dict[str, str]:
        return {"cid": request.state.correlation_id}

    def count() -> float:
        labels = {"method": "GET", "route": "/items/{n}", "status": "2xx"}
        return REGISTRY.get_sample_value("gridline_http_request_duration_seconds_count", labels) or 0.0

    before = count()
    c = TestClient(a)
    r = c.get("/items/7", headers={"X-Correlation-Id": "abc-123"})
    assert r.json() == {"cid": "abc-123"} and r.headers["x-correlation-id"] == "abc-123"
    fresh = c.get("/items/8")
    assert fresh.headers["x-correlation-id"] == fresh.json()["cid"] and len(fresh.json()["cid"]) == 36
    assert count() == before + 2
    # Unknown paths keep the shape and still carry the id.
    r = c.get("/nowhere", headers={"X-Request-Id": "req-9"})
    assert (
        r.status_code == 404 and r.json()["error"]["code"] == "not_found" and r.headers["x-correlation-id"] == "req-9"
    )
