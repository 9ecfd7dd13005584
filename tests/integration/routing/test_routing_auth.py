"""Who may call routing's API (staff tokens, roles, tenants), and "same caller" 一事多报 through the real
consumer: a category that requires the same caller merges only reports carrying the same caller hash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from gridline_pii import Keyring, caller_hash, normalize_phone
from routing import synthcity

from .conftest import TOKENS, Ctx, received, staff
from .test_routing_flow import route

pytestmark = pytest.mark.asyncio(loop_scope="session")

A, B = "330110", "330106"


async def test_unauthenticated_and_bad_tokens_get_401(ctx: Ctx) -> None:
    for method, path in [
        ("GET", f"/v1/tenants/{A}/queue"),
        ("GET", f"/v1/tenants/{A}/directory"),
        ("POST", f"/v1/tenants/{A}/directory"),
        ("GET", f"/v1/tenants/{A}/returns"),
        ("GET", f"/v1/tenants/{A}/tickets/{uuid.uuid4()}/decisions"),
        ("POST", f"/v1/tenants/{A}/tickets/{uuid.uuid4()}/dispatch"),
        ("POST", f"/v1/tenants/{A}/returns/1/review"),
    ]:
        r = await ctx.anonymous.request(method, path, json={})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated"), (method, path)
        assert r.json()["error"]["message"] == "请先登录"

    queue = f"/v1/tenants/{A}/queue"
    for header in ("Bearer not.a.jwt", "Basic dXNlcjpwdw==", "Bearer "):
        r = await ctx.anonymous.get(queue, headers={"Authorization": header})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token"), header
    past = datetime.now(UTC) - timedelta(hours=9)
    expired = TOKENS.issue(sub="d", tenant=A, role="dispatcher", now=past)
    r = await ctx.anonymous.get(queue, headers={"Authorization": f"Bearer {expired}"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "token_expired")
    forged = jwt.encode(
        {"sub": "d", "tenant": A, "role": "dispatcher", "iss": "gridline", "aud": "gridline-intake",
         "exp": datetime.now(UTC) + timedelta(hours=1)},
        "x" * 40,
        algorithm="HS256",
        headers={"kid": "it1"},
    )  # fmt: skip
    r = await ctx.anonymous.get(queue, headers={"Authorization": f"Bearer {forged}"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
    other_service = staff("d", A, audience="gridline-escalation")
    r = await ctx.anonymous.get(queue, headers=other_service)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
    # Intake's audience is accepted: one staff login serves both staff APIs.
    assert (await ctx.anonymous.get(queue, headers=staff("d", A, audience="gridline-intake"))).status_code == 200
    assert (await ctx.anonymous.get(queue, headers=staff("d", A, audience="gridline-routing"))).status_code == 200


async def test_roles(ctx: Ctx, city: synthcity.SynthCity) -> None:
    dispatcher, admin = staff("d-wang", A), staff("admin-zhou", A, role="admin")
    r = await ctx.anonymous.post(
        f"/v1/tenants/{A}/directory", json={"grids": city.grids, "bundle": city.bundle}, headers=dispatcher
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "role_not_allowed")
    assert (await ctx.anonymous.get(f"/v1/tenants/{A}/directory", headers=dispatcher)).status_code == 200
    assert (await ctx.anonymous.get(f"/v1/tenants/{A}/directory", headers=admin)).status_code == 200
    r = await ctx.anonymous.get(f"/v1/tenants/{A}/queue", headers=admin)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "role_not_allowed")
    for role in ("unit", "platform", "supervisor", "grid_staff"):  # intake's other staff roles
        r = await ctx.anonymous.get(f"/v1/tenants/{A}/queue", headers=staff("x", A, role=role))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "role_not_allowed"), role


async def test_a_dispatcher_of_one_tenant_cannot_see_or_act_on_another(ctx: Ctx, city: synthcity.SynthCity) -> None:
    t = received(A, "100101", point=(121.9, 31.9))  # outside every grid: A's manual queue
    [ev] = await route(ctx, t)
    assert ev["reason_code"] == "no_match"
    of_b = staff("d-b", B)
    for method, path, body in [
        ("GET", f"/v1/tenants/{A}/queue", None),
        ("GET", f"/v1/tenants/{A}/directory", None),
        ("GET", f"/v1/tenants/{A}/returns", None),
        ("GET", f"/v1/tenants/{A}/tickets/{t.subject}", None),
        ("GET", f"/v1/tenants/{A}/tickets/{t.subject}/decisions", None),
        ("POST", f"/v1/tenants/{A}/tickets/{t.subject}/dispatch", {"unit_code": "330110-SW"}),
        ("POST", f"/v1/tenants/{A}/tickets/{t.subject}/unmerge", None),
        ("POST", f"/v1/tenants/{A}/returns/1/review", {"approved": True, "reason": "越权审核"}),
    ]:
        r = await ctx.anonymous.request(method, path, json=body, headers=of_b)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "wrong_tenant"), (method, path)
        assert r.json()["error"]["message"] == "无权访问其他地区的数据"
    r = await ctx.anonymous.post(
        f"/v1/tenants/{A}/directory", json={"grids": city.grids, "bundle": city.bundle}, headers=staff("a", B, "admin")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "wrong_tenant")
    # Under its own tenant's path, B's dispatcher does not find A's ticket at all.
    r = await ctx.anonymous.get(f"/v1/tenants/{B}/tickets/{t.subject}", headers=of_b)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "ticket_not_found")
    r = await ctx.anonymous.post(
        f"/v1/tenants/{B}/tickets/{t.subject}/dispatch", json={"unit_code": "330110-SW"}, headers=of_b
    )
    assert r.status_code == 404
    queue_b = (await ctx.anonymous.get(f"/v1/tenants/{B}/queue", headers=of_b)).json()["items"]
    assert t.subject not in {q["ticket_id"] for q in queue_b}
    # A's own dispatcher can, and is recorded as the one who did it.
    r = await ctx.anonymous.post(
        f"/v1/tenants/{A}/tickets/{t.subject}/dispatch", json={"unit_code": "330110-SW"}, headers=staff("d-a", A)
    )
    assert r.status_code == 200, r.text
    why = (await ctx.api.get(f"/v1/tenants/{A}/tickets/{t.subject}/decisions")).json()
    assert "d-a" in " ".join(why[-1]["trail"])


async def test_same_caller_required_for_a_category(ctx: Ctx) -> None:
    tenant = "330112"
    town = synthcity.generate(100, seed=5, tenant=tenant)
    cats = [
        c | {"duplicates": {"same_caller": True}} if c["code"] == "200102" else c for c in town.bundle["categories"]
    ]
    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/directory", json={"grids": town.grids, "bundle": town.bundle | {"categories": cats}}
    )
    assert r.status_code == 201, r.text
    key = Keyring.from_spec(Keyring.generate_spec()).hmac_key()
    alice = caller_hash(normalize_phone("13800001111"), tenant, key)
    bob = caller_hash(normalize_phone("13900002222"), tenant, key)
    spot = town.cell_centre(3, 3)
    first = received(tenant, "200102", point=spot, caller_hash=alice)
    [a] = await route(ctx, first)
    assert a["type"] == "dispatch.assigned"
    [b] = await route(ctx, received(tenant, "200102", point=spot, caller_hash=bob))
    assert b["type"] == "dispatch.assigned"  # another caller at the same spot: its own ticket
    [anon] = await route(ctx, received(tenant, "200102", point=spot))
    assert anon["type"] == "dispatch.assigned"  # no caller hash: never merged under this rule
    [c] = await route(ctx, received(tenant, "200102", point=spot, caller_hash=alice))
    assert c["type"] == "dispatch.duplicate_found" and c["parent_ticket_id"] == first.subject
    assert c["rule"].endswith("+caller")
    # Other categories keep the default (no caller requirement): Bob's report merges into Alice's.
    other = received(tenant, "300201", point=spot, caller_hash=alice)
    await route(ctx, other)
    [d] = await route(ctx, received(tenant, "300201", point=spot, caller_hash=bob))
    assert d["type"] == "dispatch.duplicate_found" and d["parent_ticket_id"] == other.subject
