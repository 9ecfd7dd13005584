"""The work-order lifecycle over HTTP and routing's events, on real PostgreSQL: every step is a state
change + history line + outbox event in one transaction; illegal steps are 409 with stable codes;
units and tenants never see or touch each other's tickets."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from gridline_contracts.envelope import Envelope, EventData
from gridline_contracts.escalation import SlaBreachedV1, SlaClockStartedV1
from gridline_contracts.routing import (
    DispatchAssignedV1,
    DispatchDuplicateFoundV1,
    DispatchReturnReviewedV1,
    DispatchUnmergedV1,
)
from gridline_pii import Keyring
from intake import handlers, store

from .conftest import OTHER_TENANT, TENANT, Intake

UNIT = "330106-CGJ"
OTHER_UNIT = "330106-SCJGJ"


def env(data: EventData) -> Envelope[Any]:
    return Envelope(source="routing", tenant=TENANT, subject=str(data.ticket_id), correlation_id="c", data=data)  # type: ignore[attr-defined]


async def feed(intake: Intake, handler: Any, data: EventData) -> None:
    """What the Consumer does for one message, minus Kafka: the handler in one transaction."""
    async with intake.sessions() as s, s.begin():
        await handler(s, env(data))


def assigned(ticket_id: str, unit: str = UNIT) -> DispatchAssignedV1:
    return DispatchAssignedV1(
        ticket_id=uuid.UUID(ticket_id),
        unit_code=unit,
        unit_name="城管局",
        rule_id="R1",
        directory_version=1,
        sla_policy_key="standard-5wd",
        match_method="point",
        confidence=1.0,
        decided_at=datetime.now(UTC),
    )


async def dispatched(intake: Intake, unit: str = UNIT) -> dict[str, Any]:
    a = await intake.report()
    await feed(intake, handlers.on_dispatch_assigned, assigned(a["ticket_id"], unit))
    return a


async def post(
    intake: Intake, ref: str, action: str, headers: dict[str, str], body: dict[str, Any] | None = None
) -> Any:
    return await intake.client.post(f"/v1/tenants/{TENANT}/tickets/{ref}/{action}", json=body or {}, headers=headers)


async def test_full_life_over_http(intake: Intake) -> None:
    a = await dispatched(intake)
    tid, unit, platform = a["ticket_id"], intake.staff("unit", UNIT), intake.staff("platform")
    steps: list[tuple[str, dict[str, str], dict[str, Any], str]] = [
        ("sign", unit, {}, "accepted"),
        ("extension-request", unit, {"working_days": 3, "reason": "需协调燃气公司"}, "extension_requested"),
        ("extension-review", platform, {"approved": True, "working_days": 2}, "accepted"),
        ("reply", unit, {"text": "已清运垃圾并加装围挡"}, "replied"),
        ("reply-review", platform, {"approved": False, "comment": "未附现场照片"}, "accepted"),
        ("reply", unit, {"text": "已清运垃圾并加装围挡，附照片"}, "replied"),
        ("reply-review", platform, {"approved": True}, "pending_callback"),
        ("callback", platform, {"satisfaction": "unsatisfied", "resolved": False}, "pending_callback"),
        ("redo", platform, {"reason": "来电人称仍有异味"}, "accepted"),
        ("reply", unit, {"text": "已冲洗路面并消杀"}, "replied"),
        ("reply-review", platform, {"approved": True}, "pending_callback"),
        ("callback", platform, {"satisfaction": "satisfied", "resolved": True}, "closed"),
        ("reopen", platform, {"reason": "督查发现问题反弹"}, "accepted"),
    ]
    for action, who, body, status in steps:
        r = await post(intake, tid, action, who, body)
        assert r.status_code == 200, (action, r.text)
        assert r.json()["status"] == status, action
    hist = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/history", headers=platform)).json()
    assert [h["to_status"] for h in hist][:3] == ["received", "dispatched", "accepted"]
    assert len(hist) == 2 + len(steps) + 1  # + the close after the satisfied callback
    assert all(h["actor"] and h["note"] for h in hist)
    types = await intake.outbox_types(tid)
    assert types.count("cn.gridline.ticket.reopened.v1") == 2
    assert types[-3:] == [
        "cn.gridline.ticket.callback_recorded.v1",
        "cn.gridline.ticket.closed.v1",
        "cn.gridline.ticket.reopened.v1",
    ]
    detail = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}?with_history=true", headers=unit)).json()
    assert detail["redo_count"] == 2 and detail["extension_count"] == 1 and len(detail["history"]) == len(hist)


async def test_illegal_transitions_are_409_with_stable_codes_and_change_nothing(intake: Intake) -> None:
    a = await dispatched(intake)
    tid, unit, platform = a["ticket_id"], intake.staff("unit", UNIT), intake.staff("platform")
    r = await post(intake, tid, "reply", unit, {"text": "已处理完毕了"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    assert r.json()["error"]["details"]["allowed_from"] == ["accepted"]
    r = await post(intake, tid, "archive", platform)
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    r = await post(intake, tid, "sign", platform)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed"
    r = await post(intake, tid, "return-request", unit, {"reason_code": "why", "basis": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    before = await intake.outbox_types(tid)
    assert (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}", headers=platform)).json()[
        "status"
    ] == "dispatched"
    assert before == ["cn.gridline.ticket.received.v1", "cn.gridline.ticket.dispatched.v1"]


async def test_units_never_read_or_act_on_another_units_ticket(intake: Intake) -> None:
    a = await dispatched(intake)
    tid, no = a["ticket_id"], a["ticket_no"]
    other = intake.staff("unit", OTHER_UNIT)
    for ref in (tid, no):
        r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{ref}", headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "ticket_not_found"
        r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{ref}/history", headers=other)
        assert r.status_code == 404
    for action, body in (("sign", {}), ("return-request", {"reason_code": "not_our_duty", "basis": "三定无此职责"})):
        r = await post(intake, tid, action, other, body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "ticket_not_found"
    page = (await intake.client.get(f"/v1/tenants/{TENANT}/worklist?limit=200", headers=other)).json()
    assert tid not in {i["ticket_id"] for i in page["items"]}
    # An integration acting as a unit is bound to that unit too.
    mine = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}", headers=intake.staff("unit", UNIT))).json()
    assert mine["unit_code"] == UNIT


async def test_no_tenant_sees_another(intake: Intake) -> None:
    a = await dispatched(intake)
    foreign = intake.staff("platform", tenant=OTHER_TENANT)
    r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}", headers=foreign)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_tenant"
    r = await intake.client.get(f"/v1/tenants/{OTHER_TENANT}/tickets/{a['ticket_id']}", headers=foreign)
    assert r.status_code == 404
    r = await intake.client.get(f"/v1/tenants/{OTHER_TENANT}/worklist", headers=foreign)
    assert r.status_code == 200 and a["ticket_id"] not in {i["ticket_id"] for i in r.json()["items"]}


async def test_tokens_are_checked(intake: Intake) -> None:
    a = await dispatched(intake)
    url = f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}"
    assert (await intake.client.get(url)).json()["error"]["code"] == "unauthenticated"
    forged = intake.staff("platform")["Authorization"][:-4] + "AAAA"
    r = await intake.client.get(url, headers={"Authorization": forged})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    from intake.auth import StaffTokens

    stranger = StaffTokens("s1:some-other-secret-of-32-characters").issue(sub="x", tenant=TENANT, role="platform")
    r = await intake.client.get(url, headers={"Authorization": f"Bearer {stranger}"})
    assert r.status_code == 401
    expired = intake.tokens.issue(sub="x", tenant=TENANT, role="platform", now=datetime(2020, 1, 1, tzinfo=UTC))
    r = await intake.client.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"


async def test_return_rejected_then_approved_reassigns(intake: Intake) -> None:
    a = await dispatched(intake)
    tid, unit = a["ticket_id"], intake.staff("unit", UNIT)
    body = {"reason_code": "not_our_duty", "basis": "依三定方案属市场监管职责"}
    assert (await post(intake, tid, "return-request", unit, body)).json()["status"] == "return_requested"
    review = DispatchReturnReviewedV1(
        ticket_id=uuid.UUID(tid),
        unit_code=UNIT,
        approved=False,
        reviewer="d-7",
        reason="属本单位",
        decided_at=datetime.now(UTC),
    )
    await feed(intake, handlers.on_return_reviewed, review)
    r = await post(intake, tid, "return-request", unit, body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "return_already_refused"

    b = await dispatched(intake)
    tid = b["ticket_id"]
    await post(intake, tid, "return-request", unit, body)
    await feed(
        intake, handlers.on_return_reviewed, review.model_copy(update={"ticket_id": uuid.UUID(tid), "approved": True})
    )
    await feed(intake, handlers.on_dispatch_assigned, assigned(tid, OTHER_UNIT))
    t = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}", headers=intake.staff("platform"))).json()
    assert t["status"] == "dispatched" and t["unit_code"] == OTHER_UNIT
    assert (await post(intake, tid, "sign", unit)).status_code == 404
    assert (await post(intake, tid, "sign", intake.staff("unit", OTHER_UNIT))).status_code == 200
    types = await intake.outbox_types(tid)
    assert types[2:5] == [
        "cn.gridline.ticket.return_requested.v1",
        "cn.gridline.ticket.return_resolved.v1",
        "cn.gridline.ticket.dispatched.v1",
    ]


async def test_duplicates_are_merged_and_can_be_split(intake: Intake) -> None:
    parent = await dispatched(intake)
    child = await intake.report()
    now = datetime.now(UTC)
    await feed(
        intake,
        handlers.on_duplicate_found,
        DispatchDuplicateFoundV1(
            ticket_id=uuid.UUID(child["ticket_id"]),
            parent_ticket_id=uuid.UUID(parent["ticket_id"]),
            rule="same-place",
            decided_at=now,
        ),
    )
    platform = intake.staff("platform")
    t = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{child['ticket_id']}", headers=platform)).json()
    assert t["status"] == "merged" and t["merge_parent_id"] == parent["ticket_id"]
    # A dispatch for a merged ticket is ignored: it stays merged.
    await feed(intake, handlers.on_dispatch_assigned, assigned(child["ticket_id"]))
    split = DispatchUnmergedV1(
        ticket_id=uuid.UUID(child["ticket_id"]),
        former_parent_ticket_id=uuid.UUID(parent["ticket_id"]),
        dispatcher="d-1",
        decided_at=now,
    )
    await feed(intake, handlers.on_unmerged, split)
    hist = (
        await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{child['ticket_id']}/history", headers=platform)
    ).json()
    assert [h["to_status"] for h in hist] == ["received", "merged", "received"]
    assert parent["ticket_no"] in hist[1]["note"]


async def test_worklist_filters_and_cursor_pagination(intake: Intake) -> None:
    unit = "330106-WL-" + uuid.uuid4().hex[:6]
    ids = [(await dispatched(intake, unit))["ticket_id"] for _ in range(5)]
    now = datetime.now(UTC)
    await feed(
        intake,
        handlers.on_clock_started,
        SlaClockStartedV1(
            ticket_id=uuid.UUID(ids[0]),
            ticket_no="n",
            unit_code=unit,
            policy_key="p",
            started_at=now,
            warn_at=now,
            due_at=now,
            time_limit="5 wd",
        ),
    )
    await feed(
        intake,
        handlers.on_breached,
        SlaBreachedV1(
            ticket_id=uuid.UUID(ids[0]), ticket_no="n", unit_code=unit, policy_key="p", due_at=now, detected_at=now
        ),
    )
    await post(intake, ids[1], "sign", intake.staff("unit", unit))
    h = intake.staff("unit", unit)
    seen: list[str] = []
    cursor = None
    while True:
        q = "/v1/tenants/330106/worklist?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await intake.client.get(q, headers=h)).json()
        seen += [i["ticket_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    red = (await intake.client.get("/v1/tenants/330106/worklist?sla_colour=red", headers=h)).json()["items"]
    assert [i["ticket_id"] for i in red] == [ids[0]] and red[0]["due_at"] is not None
    acc = (await intake.client.get("/v1/tenants/330106/worklist?status=accepted", headers=h)).json()["items"]
    assert [i["ticket_id"] for i in acc] == [ids[1]]
    r = await intake.client.get("/v1/tenants/330106/worklist?cursor=bm90LWEtY3Vyc29y", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
    by_platform = await intake.client.get(
        f"/v1/tenants/330106/worklist?unit_code={unit}&limit=200", headers=intake.staff("platform")
    )
    assert len(by_platform.json()["items"]) == 5


async def test_contact_in_clear_only_for_the_platform_and_every_view_is_audited(intake: Intake) -> None:
    a = await intake.report(phone="13800138777", openid="o-CRUNCHY-ARMCHAIR", confidential=True)
    await feed(intake, handlers.on_dispatch_assigned, assigned(a["ticket_id"]))
    url = f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}"
    unit = intake.staff("unit", UNIT)
    seen = (await intake.client.get(url, headers=unit)).json()["reporter"]
    assert seen["masked_phone"] is None and seen["contact_token"] is None  # confidential: nothing at all
    r = await intake.client.post(f"{url}/contact", json={"reason": "回访来电人"}, headers=unit)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed"
    r = await intake.client.post(f"{url}/contact", json={}, headers=intake.staff("platform"))
    assert r.status_code == 422  # a reason is required
    r = await intake.client.post(f"{url}/contact", json={"reason": "回访来电人"}, headers=intake.staff("platform"))
    assert r.status_code == 200 and r.json()["phone"] == "+8613800138777"
    assert r.json()["openid"] == "o-CRUNCHY-ARMCHAIR"
    views = (await intake.client.get(f"{url}/contact-views", headers=intake.staff("supervisor"))).json()
    assert len(views) == 1 and views[0]["reason"] == "回访来电人" and views[0]["actor_role"] == "platform"
    assert sorted(views[0]["fields"]) == ["openid", "phone"] and views[0]["actor"] == "staff-platform-x"
    assert (await intake.client.get(f"{url}/contact-views", headers=unit)).status_code == 403


async def test_masked_for_units_and_hidden_for_whistleblowing(intake: Intake) -> None:
    a = await intake.report(phone="13800138666")
    await feed(intake, handlers.on_dispatch_assigned, assigned(a["ticket_id"]))
    unit = intake.staff("unit", UNIT)
    t = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}", headers=unit)).json()
    assert t["reporter"]["masked_phone"] == "138****8666"
    b = await intake.report(phone="13800138665", demand_type="report")
    await feed(intake, handlers.on_dispatch_assigned, assigned(b["ticket_id"]))
    t = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{b['ticket_id']}", headers=unit)).json()
    assert t["reporter"]["masked_phone"] is None and t["reporter"]["confidential"] is True
    feed_items = (await intake.client.get(f"/v1/tenants/{TENANT}/public/feed?limit=100")).json()["items"]
    assert all(
        set(i) == {"ref", "category_code", "status", "status_zh", "lon", "lat", "area_code", "received_on", "closed_on"}
        for i in feed_items
    )
    assert a["ticket_no"] not in json.dumps(feed_items)


async def test_notify_gets_what_it_needs_for_the_result_sms(intake: Intake) -> None:
    """ticket.reply_reviewed (approved) and ticket.closed carry the approved reply, the channel and a
    contact token that opens, with the transit key notify holds, to the reporter's phone."""
    phone = f"138{uuid.uuid4().int % 10**8:08d}"
    a = await intake.report(phone=phone)
    await feed(intake, handlers.on_dispatch_assigned, assigned(a["ticket_id"]))
    tid, unit, platform = a["ticket_id"], intake.staff("unit", UNIT), intake.staff("platform")
    for action, who, body in (
        ("sign", unit, {}),
        ("reply", unit, {"text": "已清运垃圾，并安排每日巡查"}),
        ("reply-review", platform, {"approved": True}),
        ("callback", platform, {"satisfaction": "satisfied", "resolved": True}),
    ):
        r = await post(intake, tid, action, who, body)
        assert r.status_code == 200, r.text
    async with intake.sessions() as s:
        rows = (
            await s.execute(
                select(store.outbox.c.headers, store.outbox.c.payload)
                .where(store.outbox.c.key == tid)
                .order_by(store.outbox.c.id)
            )
        ).all()
    by_type = {dict(h)["ce_type"]: json.loads(p) for h, p in rows}
    transit = Keyring.from_spec(intake.settings.pii_transit_key.get_secret_value())
    for ce_type in ("cn.gridline.ticket.reply_reviewed.v1", "cn.gridline.ticket.closed.v1"):
        e = by_type[ce_type]
        assert e["reply"] == "已清运垃圾，并安排每日巡查" and e["channel"] == "citizen", ce_type
        assert transit.open(e["reporter"]["contact_token"], "reporter-contact") == "+86" + phone  # E.164
        assert phone not in json.dumps(e)  # never in clear on Kafka
    assert "reporter" not in by_type["cn.gridline.ticket.replied.v1"]  # not yet approved: nothing to tell
