"""Routing end to end on real Kafka + PostgreSQL over the synthetic city: where tickets go (points,
boundary points, GCJ-02/BD-09, address only, unmatched), the dispatcher's queue and commands,
duplicates (并单/撤销并单), returns (退单 review, 改派, timeout), directory admin errors and failures."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from prometheus_client import REGISTRY

from gridline_contracts.intake import TicketDispatchedV1, TicketReturnRequestedV1
from gridline_geo.crs import from_wgs84, to_wgs84
from routing import domain, store, synthcity
from routing.app import ReturnTimer
from routing.handlers import Routing

from .conftest import Ctx, follow_up, received, staff

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def route(ctx: Ctx, env: Any, count: int = 1) -> list[dict[str, Any]]:
    await ctx.send(env)
    return await ctx.until_events(env.subject, count)


async def test_points_and_a_shared_corner_go_to_their_grid_and_unit(ctx: Ctx, city: synthcity.SynthCity) -> None:
    [ev] = await route(ctx, received(city.tenant, "200102", point=city.cell_centre(3, 30)))
    code = city.cell_code(3, 30)
    assert ev["type"] == "dispatch.assigned"
    assert (ev["grid_code"], ev["unit_code"], ev["match_method"]) == (code, code[:9], "point")
    assert ev["co_unit_codes"] == ["330110-CGJ"] and ev["sla_policy_key"] == "event-1wd"

    # A lattice vertex lies on the edges of four grids: it resolves, and always to the same one.
    corner = city.shared_corner(20, 20)
    around = {city.cell_code(i, j) for i in (19, 20) for j in (19, 20)}
    grids = set()
    for category in ("300301", "300101"):  # two categories, or the second would be a duplicate
        [ev] = await route(ctx, received(city.tenant, category, point=corner))
        grids.add(ev["grid_code"])
    assert ev["unit_code"] == "330110-STHJ"
    assert len(grids) == 1 and grids <= around


async def test_address_only_reports(ctx: Ctx, city: synthcity.SynthCity) -> None:
    row, col = 12, 9
    road = f"浙江省杭州市合成区{synthcity.road_name(row)}{synthcity.house_number(col, True)}号"
    [ev] = await route(ctx, received(city.tenant, "200102", address=road))
    assert (ev["grid_code"], ev["match_method"]) == (city.cell_code(col, row), "address")
    assert ev["confidence"] >= 0.8

    i, j = synthcity.estate_cells(city.n)[77]
    alias = synthcity.estate_name(77)[:2] + "小区5幢"
    [ev] = await route(ctx, received(city.tenant, "300301", address=alias))
    assert ev["grid_code"] == city.cell_code(i, j) and ev["unit_code"] == city.cell_code(i, j)[:12]

    [ev] = await route(ctx, received(city.tenant, "200102", address="不存在的路999号"))
    assert ev["type"] == "dispatch.needs_manual" and ev["reason_code"] == "no_match"


async def test_gcj02_and_bd09(ctx: Ctx) -> None:
    # A directory drawn on 高德 (GCJ-02) is imported through the admin API and stored as WGS-84.
    other = synthcity.generate(2000, seed=7, tenant="330111")
    gcj = synthcity.SynthCity(
        grids=_convert(other.grids, "gcj02"),
        bundle=other.bundle,
        n=other.n,
        seed=7,
        corners=other.corners,
        cell_codes=other.cell_codes,
        tenant="330111",
    )
    r = await ctx.api.post(
        "/v1/tenants/330111/directory", json={"grids": gcj.grids, "bundle": gcj.bundle, "crs": "gcj02"}
    )
    assert r.status_code == 201, r.text[:500]
    [published] = await ctx.events("330111")
    assert published["type"] == "directory.version_published"
    assert (published["version"], published["grids"]) == (1, 2465)
    live = (await ctx.api.get("/v1/tenants/330111/directory")).json()
    assert live["version"] == 1 and live["grids"]["grid"] == 2304 and live["warnings"] == []
    missing = await ctx.api.get("/v1/tenants/330198/directory")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "no_directory")

    for i, j in ((7, 33), (40, 2)):
        wgs = other.cell_centre(i, j)
        [ev] = await route(ctx, received("330111", "200102", point=wgs))
        assert ev["grid_code"] == other.cell_code(i, j)
        # A point picked on 百度地图 (BD-09), converted at intake, lands in the same grid.
        bd = from_wgs84(*wgs, "bd09")
        [ev] = await route(ctx, received("330111", "100101", point=to_wgs84(*bd, "bd09")))
        assert ev["grid_code"] == other.cell_code(i, j) and ev["unit_code"] == "330110-CGJ"


def _convert(fc: dict[str, Any], crs: Any) -> dict[str, Any]:
    def conv(node: Any) -> Any:
        if isinstance(node, list) and node and isinstance(node[0], float):
            return list(from_wgs84(node[0], node[1], crs))
        return [conv(n) for n in node]

    return {
        "type": "FeatureCollection",
        "features": [
            f | {"geometry": f["geometry"] | {"coordinates": conv(f["geometry"]["coordinates"])}}
            for f in fc["features"]
        ],
    }


async def test_unmatched_go_to_the_queue_and_a_dispatcher_dispatches(ctx: Ctx, city: synthcity.SynthCity) -> None:
    tenant = city.tenant
    first, second = received(tenant, "100101", point=(121.9, 31.9)), received(tenant, "200501", area_code="330110")
    [a] = await route(ctx, first)
    [b] = await route(ctx, second)
    assert a["reason_code"] == "no_match"
    assert b["reason_code"] == "place_too_coarse"  # only the district: no 属地街道 to give it to

    queue = (await ctx.api.get(f"/v1/tenants/{tenant}/queue", params={"limit": 500})).json()["items"]
    ids = [q["ticket_id"] for q in queue]
    assert first.subject in ids
    queued = [q["queued_at"] for q in queue]
    assert queued == sorted(queued)  # oldest first

    url = f"/v1/tenants/{tenant}/tickets/{first.subject}/dispatch"
    r = await ctx.api.post(url, json={"unit_code": "NO-SUCH-UNIT"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unknown_unit")
    r = await ctx.api.post(url, json={"unit_code": city.cell_code(0, 0)[:9]})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "department_only")  # 井盖 never to a 街道
    r = await ctx.api.post(url, json={"unit_code": "330110-SW"})
    assert r.status_code == 200, r.text
    events = await ctx.until_events(first.subject, 2)
    assert events[-1]["type"] == "dispatch.assigned" and events[-1]["match_method"] == "manual"
    assert events[-1]["unit_code"] == "330110-SW" and events[-1]["sla_policy_key"] == "component-2wd"
    r = await ctx.api.post(url, json={"unit_code": "330110-SW"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_in_manual_queue")
    why = (await ctx.api.get(f"/v1/tenants/{tenant}/tickets/{first.subject}/decisions")).json()
    assert [d["outcome"] for d in why] == ["needs_manual", "manual"]
    missing = await ctx.api.post(f"/v1/tenants/{tenant}/tickets/{uuid.uuid4()}/dispatch", json={"unit_code": "x"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "ticket_not_found")


async def test_duplicates_merge_and_a_dispatcher_unmerges(ctx: Ctx, city: synthcity.SynthCity) -> None:
    tenant = city.tenant
    lon, lat = city.cell_centre(10, 40)
    parent = received(tenant, "200102", point=(lon, lat))
    await route(ctx, parent)
    child = received(tenant, "200102", point=(lon + 0.0003, lat))  # ≈ 29 m east
    [dup] = await route(ctx, child)
    assert dup["type"] == "dispatch.duplicate_found" and dup["parent_ticket_id"] == parent.subject
    assert 20 < dup["distance_m"] < 40 and dup["rule"] == "radius:100m/72h"
    [other] = await route(ctx, received(tenant, "300101", point=(lon, lat)))  # another category
    assert other["type"] == "dispatch.assigned"
    [elsewhere] = await route(ctx, received("330199", "200102", point=(lon, lat)))  # another tenant
    assert elsewhere["type"] == "dispatch.needs_manual" and elsewhere["reason_code"] == "no_directory"

    view = (await ctx.api.get(f"/v1/tenants/{tenant}/tickets/{parent.subject}")).json()
    assert view["duplicate_count"] == 1 and view["children"] == [child.subject]

    # Same address, no coordinates (most hotline calls): a variant spelling is the same place.
    addr = received(tenant, "300201", address=f"{synthcity.road_name(20)}35号")
    await route(ctx, addr)
    [dup2] = await route(ctx, received(tenant, "300201", address=f"合成区{synthcity.road_name(20)} 35 號"))
    assert dup2["type"] == "dispatch.duplicate_found" and dup2["rule"] == "same_address/72h"

    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/tickets/{child.subject}/unmerge", headers=staff("dispatcher-li", tenant)
    )
    assert r.status_code == 200, r.text
    types = [e["type"] for e in await ctx.events(child.subject)]
    assert types == ["dispatch.duplicate_found", "dispatch.unmerged", "dispatch.assigned"]
    view = (await ctx.api.get(f"/v1/tenants/{tenant}/tickets/{parent.subject}")).json()
    assert view["duplicate_count"] == 0 and view["children"] == []
    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/tickets/{child.subject}/unmerge", headers=staff("dispatcher-li", tenant)
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_merged")

    # 并单 by hand from the queue.
    lone = received(tenant, "200102", address="找不到的巷子")
    await route(ctx, lone)
    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/tickets/{lone.subject}/merge",
        json={"parent_ticket_id": parent.subject},
        headers=staff("dispatcher-li", tenant),
    )
    assert r.status_code == 200 and r.json()["rule"] == "manual:dispatcher-li"


def _dispatched(first: Any, unit: str) -> Any:
    e = first.data
    return follow_up(
        first,
        TicketDispatchedV1(
            ticket_id=e.ticket_id,
            ticket_no=e.ticket_no,
            category_code=e.category_code,
            unit_code=unit,
            sla_policy_key="x",
            dispatched_at=datetime.now(UTC),
            reporter=e.reporter,
        ),
    )


def _return(first: Any, unit: str, reason: str) -> Any:
    e = first.data
    return follow_up(
        first,
        TicketReturnRequestedV1(
            ticket_id=e.ticket_id,
            ticket_no=e.ticket_no,
            from_status="dispatched",
            to_status="return_requested",
            actor_role="unit",
            actor=unit,
            at=datetime.now(UTC),
            unit_code=unit,
            reason_code=reason,
            basis="依据本单位三定方案第三条",
        ),
    )


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_returns_auto_rules_dispatcher_review_and_timeout(
    ctx: Ctx, city: synthcity.SynthCity, routing: Routing
) -> None:
    tenant = city.tenant
    # 属地不符 from the 社区 whose area holds the point: rejected automatically.
    t = received(tenant, "300301", point=city.cell_centre(5, 44))
    [a] = await route(ctx, t)
    await ctx.send(_dispatched(t, a["unit_code"]))
    before = _metric("routing_returns_total", unit=a["unit_code"], outcome="rejected")
    await ctx.send(_return(t, a["unit_code"], "wrong_territory"))
    events = await ctx.until_events(t.subject, 2)
    assert events[1]["type"] == "dispatch.return_reviewed"
    assert (events[1]["approved"], events[1]["reviewer"]) == (False, "auto:location_in_unit_area")
    assert _metric("routing_returns_total", unit=a["unit_code"], outcome="rejected") == before + 1

    # Reassigned by hand to 城管局, which returns it (职能不符): the 派单目录 names the 街道 → approved, 改派.
    t = received(tenant, "200102", point=city.cell_centre(30, 5))
    [a] = await route(ctx, t)
    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/tickets/{t.subject}/reassign",
        json={"unit_code": "330110-CGJ"},
        headers=staff("d-zhao", tenant),
    )
    assert r.status_code == 200, r.text
    await ctx.send(_dispatched(t, "330110-CGJ"))
    await ctx.send(_return(t, "330110-CGJ", "not_our_duty"))
    events = await ctx.until_events(t.subject, 4)
    assert [e["type"] for e in events] == [
        "dispatch.assigned",
        "dispatch.assigned",
        "dispatch.return_reviewed",
        "dispatch.assigned",
    ]
    assert (events[2]["approved"], events[2]["reviewer"]) == (True, "auto:directory_names_other_unit")
    assert events[3]["unit_code"] == a["unit_code"] and "330110-CGJ" not in events[3]["co_unit_codes"]

    # 权属不清: for a dispatcher, who approves and names the unit.
    t = received(tenant, "300101", point=city.cell_centre(44, 30))
    await route(ctx, t)
    await ctx.send(_dispatched(t, "330110-STHJ"))
    await ctx.send(_return(t, "330110-STHJ", "unclear_ownership"))

    async def pending() -> Any:
        items = (await ctx.api.get(f"/v1/tenants/{tenant}/returns")).json()["items"]
        return [i for i in items if i["ticket_id"] == t.subject]

    [req] = await _until(pending)
    review = f"/v1/tenants/{tenant}/returns/{req['id']}/review"
    body = {"approved": True, "reason": "噪声源为餐饮油烟设备", "unit_code": "330110-STHJ"}
    qian = staff("d-qian", tenant)
    r = await ctx.api.post(review, json=body, headers=qian)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unit_returned")
    r = await ctx.api.post(review, json=body | {"unit_code": "330110-SCJGJ"}, headers=qian)
    assert r.status_code == 200, r.text
    events = await ctx.events(t.subject)
    assert events[-2]["type"] == "dispatch.return_reviewed" and events[-2]["reviewer"] == "d-qian"
    assert events[-1]["unit_code"] == "330110-SCJGJ" and events[-1]["match_method"] == "manual"
    r = await ctx.api.post(review, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "return_already_reviewed")

    # 已进入法定程序, nobody reviews within the window: the timeout approves and 改派 skips 城管局.
    t = received(tenant, "100101", point=city.cell_centre(25, 25))
    [a] = await route(ctx, t)
    assert a["unit_code"] == "330110-CGJ"
    await ctx.send(_dispatched(t, "330110-CGJ"))
    await ctx.send(_return(t, "330110-CGJ", "legal_procedure"))
    [req] = await _until(pending)
    # The window is 1 工作日: close of business (17:30 Shanghai) of the next working day.
    due = datetime.fromisoformat(req["review_due_at"])
    assert due.astimezone(ZoneInfo("Asia/Shanghai")).time() == time(17, 30) and req["calendar_error"] is None
    assert chinese_calendar.is_workday(due.astimezone(ZoneInfo("Asia/Shanghai")).date())
    async with ctx.sessions() as s, s.begin():
        assert await routing.expire_returns(s, due - timedelta(seconds=1)) == 0
        assert await routing.expire_returns(s, due + timedelta(seconds=1)) >= 1
    events = await ctx.events(t.subject)
    assert (events[-2]["approved"], events[-2]["reviewer"]) == (True, "auto:review_timeout")
    assert events[-1]["type"] == "dispatch.assigned" and events[-1]["unit_code"] == "330110-SW"
    assert _metric("routing_reroutes_total", unit="330110-CGJ", outcome="assigned") >= 1


async def _until(check: Any, timeout: float = 30) -> Any:
    from .conftest import until

    return await until("condition", check, timeout)


async def test_directory_admin_rejects_bad_input_with_reasons(ctx: Ctx, city: synthcity.SynthCity) -> None:
    url = "/v1/tenants/330110/directory"

    async def codes(grids: Any, bundle: Any, path: str = url) -> set[str]:
        r = await ctx.api.post(path, json={"grids": grids, "bundle": bundle})
        assert r.status_code == 422, r.text[:300]
        body = r.json()["error"]
        return {i["code"] for i in body["details"]} if body["code"] == "directory_invalid" else {body["code"]}

    assert "not_feature_collection" in await codes({"type": "Feature"}, city.bundle)
    assert {"no_grids", "no_units", "no_categories", "no_rules"} <= await codes(
        {"type": "FeatureCollection", "features": []}, {}
    )
    feats = city.grids["features"]
    streets = [f for f in feats if f["properties"]["level"] == "street"][:2]
    clash = [feats[0], streets[0], streets[1] | {"geometry": streets[0]["geometry"]}]
    assert "overlap" in await codes({"type": "FeatureCollection", "features": clash}, city.bundle)
    open_ring = feats[0] | {
        "geometry": {"type": "Polygon", "coordinates": [[[120.1, 30.2], [120.2, 30.2], [120.2, 30.3], [120.1, 30.3]]]}
    }
    assert "ring_not_closed" in await codes({"type": "FeatureCollection", "features": [open_ring]}, city.bundle)
    bad_rule = city.bundle | {
        "rules": [
            *city.bundle["rules"],
            {"id": "R999", "category_code": "999999", "area_code": "*", "main_unit_code": "NOPE"},
        ]
    }
    assert {"unknown_category", "unknown_unit"} <= await codes(city.grids, bad_rule)
    assert "tenant_mismatch" in await codes(city.grids, city.bundle | {"tenant": "330106"})
    assert "invalid_request" in await codes(city.grids, city.bundle, "/v1/tenants/not-a-code/directory")


async def test_a_routing_failure_sends_the_ticket_to_the_queue(
    ctx: Ctx, city: synthcity.SynthCity, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug in the router")

    monkeypatch.setattr(domain, "decide", broken)
    t = received(city.tenant, "200102", point=city.cell_centre(47, 47))
    [ev] = await route(ctx, t)
    assert ev["type"] == "dispatch.needs_manual" and ev["reason_code"] == "routing_error"
    queue = (await ctx.api.get(f"/v1/tenants/{city.tenant}/queue", params={"limit": 500})).json()["items"]
    assert t.subject in [q["ticket_id"] for q in queue]


async def test_the_return_timer_decides_overdue_requests(ctx: Ctx, city: synthcity.SynthCity, routing: Routing) -> None:
    t = received(city.tenant, "100201", point=city.cell_centre(35, 40))
    [a] = await route(ctx, t)
    await ctx.send(_dispatched(t, a["unit_code"]))
    await ctx.send(_return(t, a["unit_code"], "unclear_ownership"))

    async def pending_row() -> Any:
        async with ctx.sessions() as s:
            rows = await store.list_return_requests(s, city.tenant, "pending", 500)
        return [r for r in rows if str(r.ticket_id) == t.subject]

    [row] = await _until(pending_row)
    async with ctx.sessions() as s, s.begin():
        past = datetime.now(UTC) - timedelta(minutes=1)
        await s.execute(
            store.return_request.update().where(store.return_request.c.id == row.id).values(review_due_at=past)
        )
    timer = ReturnTimer(routing, ctx.sessions, interval_s=0.1)
    task = asyncio.create_task(timer.run())
    try:
        events = await ctx.until_events(t.subject, 3)
    finally:
        await timer.stop()
        await asyncio.wait_for(task, 10)
    assert (events[1]["type"], events[1]["reviewer"]) == ("dispatch.return_reviewed", "auto:review_timeout")
    assert events[2]["type"] == "dispatch.needs_manual" and events[2]["reason_code"] == "only_excluded_units"


async def test_a_return_in_a_year_without_calendar_data_waits_for_a_dispatcher(
    ctx: Ctx, city: synthcity.SynthCity, routing: Routing
) -> None:
    tenant = city.tenant
    t = received(tenant, "300101", point=city.cell_centre(40, 12))
    await route(ctx, t)
    await ctx.send(_dispatched(t, "330110-STHJ"))
    late = _return(t, "330110-STHJ", "unclear_ownership")
    late = late.model_copy(
        update={"data": late.data.model_copy(update={"at": datetime(2026, 12, 31, 3, 0, tzinfo=UTC)})}
    )
    gaps = _metric("routing_calendar_gaps_total")
    await ctx.send(late)

    async def stored() -> Any:
        items = (await ctx.api.get(f"/v1/tenants/{tenant}/returns")).json()["items"]
        return [i for i in items if i["ticket_id"] == t.subject]

    [req] = await _until(stored)
    # 2027 is not in chinese_calendar and the directory enters no overrides: no deadline, a clear reason.
    assert req["review_due_at"] is None and req["status"] == "pending"
    assert "2027" in req["calendar_error"] and "calendar.overrides" in req["calendar_error"]
    assert _metric("routing_calendar_gaps_total") == gaps + 1
    async with ctx.sessions() as s, s.begin():
        await routing.expire_returns(s, datetime(2030, 1, 1, tzinfo=UTC))  # the timer never decides on a guess
    [req] = await stored()
    assert req["status"] == "pending"
    r = await ctx.api.post(
        f"/v1/tenants/{tenant}/returns/{req['id']}/review", json={"approved": False, "reason": "属于本单位职责"}
    )
    assert r.status_code == 200, r.text
