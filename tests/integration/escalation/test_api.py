"""Supervisor API on the real schema: policies as versioned tenant data with validation, calendar
overrides, and the 2027 gap as a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalation.api import build_router
from escalation.policy import DEFAULT_POLICIES
from gridline_boot.http import install_error_handlers

TENANT = "330106"


@pytest.fixture(scope="module")
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router())
    app.state.sessions = sessions
    app.state.timezone = "Asia/Shanghai"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://esc") as c:
        yield c


def policy_body(**changes: Any) -> dict[str, Any]:
    body = DEFAULT_POLICIES["standard-5wd"].to_dict()
    body.update(key="xihu-complaint-7wd", name="西湖区投诉 7个工作日", **changes)
    body["limit"] = {"kind": "working_days", "amount": 7}
    return body


async def test_policies_are_versioned_and_validated(api: httpx.AsyncClient) -> None:
    r1 = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body())
    assert r1.status_code == 201 and r1.json()["version"] == 1
    r2 = await api.post(
        f"/v1/tenants/{TENANT}/policies", json=policy_body(warn_before={"kind": "working_days", "amount": 2})
    )
    assert r2.status_code == 201 and r2.json()["version"] == 2
    versions = (await api.get(f"/v1/tenants/{TENANT}/policies/xihu-complaint-7wd")).json()
    assert [v["version"] for v in versions] == [1, 2]
    listed = {p["key"]: p for p in (await api.get(f"/v1/tenants/{TENANT}/policies")).json()}
    assert listed["xihu-complaint-7wd"]["source"] == "tenant" and listed["xihu-complaint-7wd"]["version"] == 2
    assert listed["standard-5wd"]["source"] == "default"

    bad = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body(warn_at_fraction=0.5))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"
    assert "时限策略无效" in bad.json()["error"]["message"]
    no_sign = await api.post(f"/v1/tenants/{TENANT}/policies", json=policy_body(sign_policy_key="sign-never"))
    assert no_sign.status_code == 422 and no_sign.json()["error"]["code"] == "unknown_sign_policy"
    missing = await api.get(f"/v1/tenants/{TENANT}/policies/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_policy"


async def test_2027_is_a_clear_error_until_its_notice_is_entered(api: httpx.AsyncClient) -> None:
    gap = await api.get(f"/v1/tenants/{TENANT}/calendar/2027")
    assert gap.status_code == 409 and gap.json()["error"]["code"] == "calendar_gap"
    # 2027 元旦: Fri 1 Jan off (an illustrative entry; the real notice is entered the same way).
    r = await api.put(f"/v1/tenants/{TENANT}/calendar/2027-01-01", json={"is_workday": False, "note": "元旦"})
    assert r.status_code == 204
    year = (await api.get(f"/v1/tenants/{TENANT}/calendar/2027")).json()
    assert year["overrides"] == {"2027-01-01": False}
    assert year["workdays_by_month"]["1"] == 20  # 21 weekdays in January 2027, less 元旦
    known = (await api.get(f"/v1/tenants/{TENANT}/calendar/2026")).json()
    assert known["workdays_by_month"]["10"] == 18  # 国庆 2026 from chinese_calendar, 调休 Saturdays included
    assert (await api.delete(f"/v1/tenants/{TENANT}/calendar/2027-01-01")).status_code == 204
    assert (await api.delete(f"/v1/tenants/{TENANT}/calendar/2027-01-01")).status_code == 404
    assert (await api.get(f"/v1/tenants/{TENANT}/calendar/1999")).json()["error"]["code"] == "bad_year"
