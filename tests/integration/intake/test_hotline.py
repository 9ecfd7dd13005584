"""12345 orders pushed with HMAC signatures, on real PostgreSQL: stale and replayed requests are
refused, the same order twice is one ticket, a changed re-push is an update kept in the history."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from intake.auth import signature

from .conftest import HOTLINE_SECRET, TENANT, Intake


def signed(
    body: Any, *, key: str = "hz12345", secret: str = HOTLINE_SECRET, ts: int | None = None, nonce: str | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    t = str(ts if ts is not None else int(time.time()))
    n = nonce or uuid.uuid4().hex
    return raw, {
        "content-type": "application/json",
        "X-Api-Key": key,
        "X-Timestamp": t,
        "X-Nonce": n,
        "X-Signature": signature(secret, t, n, raw),
    }


CALLED = datetime.now(UTC) - timedelta(minutes=5)
DUE = (CALLED + timedelta(days=5)).replace(microsecond=0)


def order(external_id: str, **kw: Any) -> dict[str, Any]:
    body = {
        "external_id": external_id,
        "call_time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "caller_name": "王先生",
        "phone": "13912345678",
        "demand_type": "投诉",
        "category_code": "200102",
        "content": "小区门口夜间施工噪音扰民",
        "address": "文三路 90 号",
        "area_code": "330106005",
        "priority": "紧急",
        "due_at": DUE.isoformat(),
    }
    body.update(kw)
    return body


async def push(c: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
    raw, headers = signed(body, **kw)
    return await c.post("/v1/hotline/orders", content=raw, headers=headers)


async def test_same_order_twice_is_one_ticket_and_a_change_is_an_update(intake: Intake) -> None:
    ext = "HZ12345-" + uuid.uuid4().hex[:10]
    first = await push(intake.client, order(ext))
    assert first.status_code == 201, first.text
    a = first.json()
    assert a["outcome"] == "created" and a["query_code"]
    # A re-push differing only in untracked fields (here call_time) is the same ticket, not an update.
    again = await push(intake.client, order(ext, call_time=(CALLED + timedelta(seconds=1)).isoformat()))
    assert again.status_code == 200 and again.json()["ticket_id"] == a["ticket_id"]
    assert again.json()["outcome"] == "unchanged"
    same = order(ext)
    r1 = await push(intake.client, same)
    r2 = await push(intake.client, same)
    assert r2.status_code == 200 and r2.json()["outcome"] == "unchanged" and r2.json()["ticket_id"] == a["ticket_id"]
    assert r1.json()["ticket_id"] == a["ticket_id"]
    changed = await push(intake.client, same | {"content": "小区门口夜间施工噪音扰民，已持续一周", "priority": "特急"})
    assert changed.status_code == 200
    assert changed.json()["outcome"] == "updated" and changed.json()["changed_fields"] == ["description", "priority"]
    platform = intake.staff("platform")
    t = (
        await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}?with_history=true", headers=platform)
    ).json()
    assert t["priority"] == "critical" and t["channel"] == "hotline" and t["demand_type"] == "complaint"
    assert t["platform_due_at"] is not None and t["reporter"]["masked_phone"] == "139****5678"
    assert [h["action"] for h in t["history"]] == ["receive", "updated"]
    assert "description" in t["history"][1]["note"]
    types = await intake.outbox_types(a["ticket_id"])
    assert types == ["cn.gridline.ticket.received.v1", "cn.gridline.ticket.updated.v1"]
    # The platform reads its own order back by its own id.
    st = await intake.client.get(f"/v1/hotline/orders/{ext}", headers=_get_headers())
    assert st.status_code == 200 and st.json()["ticket_no"] == a["ticket_no"] and st.json()["status"] == "received"


def _get_headers() -> dict[str, str]:
    t, n = str(int(time.time())), uuid.uuid4().hex
    return {"X-Api-Key": "hz12345", "X-Timestamp": t, "X-Nonce": n, "X-Signature": signature(HOTLINE_SECRET, t, n, b"")}


async def test_origin_travels_but_the_phone_and_name_never_do(intake: Intake) -> None:
    ext = "HZ12345-" + uuid.uuid4().hex[:10]
    a = (await push(intake.client, order(ext, demand_type="举报"))).json()
    async with intake.sessions() as s:
        from sqlalchemy import select

        from intake import store

        payload = (
            await s.execute(select(store.outbox.c.payload).where(store.outbox.c.key == a["ticket_id"]))
        ).scalar_one()
        contact = (
            await s.execute(
                select(store.reporter_contact)
                .join(store.ticket, store.ticket.c.reporter_id == store.reporter_contact.c.id)
                .where(store.ticket.c.id == uuid.UUID(a["ticket_id"]))
            )
        ).one()
    data = json.loads(payload)["data"] if b'"data"' in payload else json.loads(payload)
    text = payload.decode()
    assert "13912345678" not in text and "王先生" not in text
    assert data["origin"] == {"integration": "hz12345", "external_id": ext}
    assert data["reporter"]["masked_phone"] is None  # 举报: hidden entirely
    assert "王先生" not in (contact.name_sealed or "") and contact.name_sealed


async def test_stale_replayed_forged_and_unknown_requests_are_refused(intake: Intake) -> None:
    body = order("HZ12345-" + uuid.uuid4().hex[:10])
    r = await push(intake.client, body, ts=int(time.time()) - 3600)
    assert r.status_code == 401 and r.json()["error"]["code"] == "stale_request"
    r = await push(intake.client, body, ts=int(time.time()) + 3600)
    assert r.json()["error"]["code"] == "stale_request"
    r = await push(intake.client, body, secret="not-the-secret-at-all")
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
    r = await push(intake.client, body, key="nobody")
    assert r.json()["error"]["code"] == "unknown_api_key"
    raw, headers = signed(body)
    tampered = raw.replace("噪音".encode(), "灯光".encode())
    r = await intake.client.post("/v1/hotline/orders", content=tampered, headers=headers)
    assert r.json()["error"]["code"] == "bad_signature"
    r = await intake.client.post("/v1/hotline/orders", content=raw, headers=headers)
    assert r.status_code == 201
    r = await intake.client.post("/v1/hotline/orders", content=raw, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "replayed_request"
    r = await intake.client.post("/v1/hotline/orders", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "signature_required"


async def test_bad_orders_get_stable_codes(intake: Intake) -> None:
    ext = "HZ12345-" + uuid.uuid4().hex[:10]
    r = await push(intake.client, order(ext, demand_type="闲聊"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = await push(intake.client, order(ext, phone="12345"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_phone"
    r = await push(intake.client, order(ext, call_time=(datetime.now(UTC) + timedelta(hours=1)).isoformat()))
    assert r.json()["error"]["code"] == "call_time_in_future"
    r = await push(intake.client, order(ext, attachment_urls=["ftp://x/y.jpg"]))
    assert r.status_code == 422


async def test_integration_rate_limit_answers_429_with_retry_after(intake: Intake) -> None:
    codes = []
    for _ in range(3):
        r = await push(intake.client, order("T-" + uuid.uuid4().hex[:8]), key="tiny", secret="tiny-secret-0123456789")
        codes.append(r.status_code)
    assert codes[:2] == [201, 201] and codes[2] == 429
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "rate_limited"


async def test_changes_after_close_are_refused(intake: Intake) -> None:
    ext = "HZ12345-" + uuid.uuid4().hex[:10]
    a = (await push(intake.client, order(ext))).json()
    r = await intake.client.post(
        f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}/direct-close",
        json={"answer": "已电话答复"},
        headers=intake.staff("platform"),
    )
    assert r.status_code == 200 and r.json()["status"] == "direct_closed"
    r = await push(intake.client, order(ext, content="再次反映噪音问题仍未解决"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "ticket_finished"


async def test_an_integration_reads_only_what_it_pushed(intake: Intake) -> None:
    ext = "HZ12345-" + uuid.uuid4().hex[:10]
    mine = (await push(intake.client, order(ext))).json()
    citizen = await intake.report()
    for ticket_id, expected in ((mine["ticket_id"], 200), (citizen["ticket_id"], 404)):
        r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{ticket_id}", headers=_get_headers())
        assert r.status_code == expected, r.text
    r = await intake.client.post(
        f"/v1/tenants/{TENANT}/tickets/{mine['ticket_id']}/sign", content=b"{}", headers=_signed_headers(b"{}")
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed"


def _signed_headers(body: bytes, key: str = "hz12345", secret: str = HOTLINE_SECRET) -> dict[str, str]:
    t, n = str(int(time.time())), uuid.uuid4().hex
    return {
        "content-type": "application/json",
        "X-Api-Key": key,
        "X-Timestamp": t,
        "X-Nonce": n,
        "X-Signature": signature(secret, t, n, body),
    }


async def test_an_integration_acting_as_a_unit_has_exactly_that_units_rights(intake: Intake) -> None:
    from intake import handlers

    from .test_lifecycle import assigned, feed

    ours, theirs = await intake.report(), await intake.report()
    await feed(intake, handlers.on_dispatch_assigned, assigned(ours["ticket_id"], "330106-CGJ"))
    await feed(intake, handlers.on_dispatch_assigned, assigned(theirs["ticket_id"], "330106-SCJGJ"))
    bridge = {"key": "cg-bridge", "secret": "cg-bridge-secret-0123456789"}
    url = f"/v1/tenants/{TENANT}/tickets"
    r = await intake.client.post(
        f"{url}/{ours['ticket_id']}/sign", content=b"{}", headers=_signed_headers(b"{}", **bridge)
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    r = await intake.client.post(
        f"{url}/{theirs['ticket_id']}/sign", content=b"{}", headers=_signed_headers(b"{}", **bridge)
    )
    assert r.status_code == 404
    hist = (await intake.client.get(f"{url}/{ours['ticket_id']}/history", headers=intake.staff("platform"))).json()
    assert hist[-1]["actor"] == "integration:cg-bridge" and hist[-1]["actor_role"] == "unit"


async def test_a_signed_mini_program_backend_reads_back_its_own_reports(intake: Intake) -> None:
    wx = {"key": "wx-mini", "secret": "wx-mini-secret-0123456789"}
    body = {"tenant": TENANT, "category_code": "200102", "description": "路边垃圾桶破损", "address": "文一路 2 号"}
    raw = json.dumps(body, ensure_ascii=False).encode()
    r = await intake.client.post("/v1/reports", content=raw, headers=_signed_headers(raw, **wx))
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    got = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}", headers=_signed_headers(b"", **wx))
    assert got.status_code == 200 and got.json()["channel"] == "citizen"
    other = await intake.report()
    got = await intake.client.get(
        f"/v1/tenants/{TENANT}/tickets/{other['ticket_id']}", headers=_signed_headers(b"", **wx)
    )
    assert got.status_code == 404
    raw = json.dumps(body | {"tenant": "330108"}, ensure_ascii=False).encode()
    r = await intake.client.post("/v1/reports", content=raw, headers=_signed_headers(raw, **wx))
    assert r.status_code == 403
    r = await intake.client.post(
        "/v1/reports", content=raw, headers=_signed_headers(raw, key="wx-mini", secret="wrong-secret-000000")
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
