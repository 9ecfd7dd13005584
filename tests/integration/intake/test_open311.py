"""Open311 GeoReport v2 on real PostgreSQL: discovery, services, POST/GET requests with the spec's
filters and error format, JSON and XML, and FixMyStreet's servicerequestupdates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

from intake import handlers

from .conftest import OPEN311_KEY, TENANT, Intake
from .test_lifecycle import assigned, feed

BASE = f"/open311/v2/{TENANT}"


async def post(intake: Intake, fmt: str = "json", **form: str) -> object:
    data = {"api_key": OPEN311_KEY, "jurisdiction_id": "", "service_code": "200102", "lat": "30.28", "long": "120.12"}
    data.update(form)
    return await intake.client.post(f"{BASE}/requests.{fmt}", data=data)


async def test_discovery_and_services_in_json_and_xml(intake: Intake) -> None:
    d = (await intake.client.get(f"{BASE}/discovery.json")).json()
    assert d["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    services = (await intake.client.get(f"{BASE}/services.json")).json()
    assert (
        isinstance(services, list)
        and {"service_code": "200102"}.items()
        <= services[[s["service_code"] for s in services].index("200102")].items()
    )
    x = await intake.client.get(f"{BASE}/services.xml")
    assert x.headers["content-type"].startswith("text/xml") and x.content.startswith(
        b'<?xml version="1.0" encoding="utf-8"?>'
    )
    root = ET.fromstring(x.content)
    assert root.tag == "services" and root.find("service/service_code") is not None
    assert (await intake.client.get(f"{BASE}/services/200102.json")).json()["service_code"] == "200102"
    r = await intake.client.get(f"{BASE}/services/999999.json")
    assert r.status_code == 404 and r.json() == [{"code": 404, "description": "service_code 999999 not found"}]


async def test_post_and_get_requests_with_filters(intake: Intake) -> None:
    r = await post(intake, description="路灯不亮已经三天", phone="13800138321", first_name="小明", last_name="李")
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    (created,) = r.json()  # type: ignore[attr-defined]
    sid = created["service_request_id"]
    assert "token" not in created
    one = (await intake.client.get(f"{BASE}/requests/{sid}.json")).json()
    assert isinstance(one, list) and one[0]["status"] == "open" and one[0]["service_code"] == "200102"
    assert one[0]["description"] == "路灯不亮已经三天" and one[0]["lat"] == 30.28
    assert "13800138321" not in str(one) and "小明" not in str(one)
    # lifecycle → open/closed with notes
    ticket = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{sid}", headers=intake.staff("platform"))).json()
    await feed(intake, handlers.on_dispatch_assigned, assigned(ticket["ticket_id"]))
    one = (await intake.client.get(f"{BASE}/requests/{sid}.json")).json()[0]
    assert one["agency_responsible"] == "330106-CGJ" and one["status_notes"].startswith("已派单待签收")
    # filters: id list overrides everything
    got = (
        await intake.client.get(f"{BASE}/requests.json", params={"service_request_id": sid, "status": "closed"})
    ).json()
    assert [g["service_request_id"] for g in got] == [sid]
    got = (await intake.client.get(f"{BASE}/requests.json", params={"status": "open", "service_code": "200102"})).json()
    assert sid in [g["service_request_id"] for g in got]
    got = (
        await intake.client.get(f"{BASE}/requests.json", params={"status": "closed", "service_code": "200102"})
    ).json()
    assert sid not in [g["service_request_id"] for g in got]
    old = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    got = (await intake.client.get(f"{BASE}/requests.json", params={"end_date": old, "jurisdiction_id": ""})).json()
    assert sid not in [g["service_request_id"] for g in got]
    x = await intake.client.get(f"{BASE}/requests/{sid}.xml")
    assert ET.fromstring(x.content).find("request/service_request_id").text == sid  # type: ignore[union-attr]


async def test_errors_follow_the_spec(intake: Intake) -> None:
    r = await post(intake, api_key="wrong")
    assert r.status_code == 403 and r.json()[0]["code"] == 403  # type: ignore[attr-defined]
    r = await post(intake, api_key="")
    assert r.status_code == 403  # type: ignore[attr-defined]
    r = await post(intake, service_code="")
    assert r.status_code == 400  # type: ignore[attr-defined]
    r = await post(intake, service_code="424242")
    assert r.status_code == 404  # type: ignore[attr-defined]
    r = await post(intake, lat="", long="", description="没有位置")
    assert r.status_code == 400 and "location" in r.json()[0]["description"]  # type: ignore[attr-defined]
    r = await post(intake, "xml", api_key="wrong")
    root = ET.fromstring(r.content)  # type: ignore[attr-defined]
    assert root.tag == "errors" and root.find("error/code").text == "403"  # type: ignore[union-attr]
    r = await intake.client.get(
        f"{BASE}/requests.json", params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}
    )
    assert r.status_code == 400
    r = await intake.client.get(f"{BASE}/requests.json", params={"start_date": "2026-01-01"})
    assert r.status_code == 400 and "time zone" in r.json()[0]["description"]
    assert (await intake.client.get(f"{BASE}/requests/NOPE-1.json")).status_code == 404
    assert (await intake.client.get(f"{BASE}/tokens/{uuid.uuid4().hex}.json")).status_code == 404
    assert (await intake.client.get(f"{BASE}/services.html")).status_code == 404


async def test_servicerequestupdates(intake: Intake) -> None:
    (created,) = (await post(intake, description="井盖松动有异响")).json()  # type: ignore[attr-defined]
    sid = created["service_request_id"]
    r = await intake.client.get(f"{BASE}/servicerequestupdates.json")
    assert r.status_code == 403
    r = await intake.client.get(f"{BASE}/servicerequestupdates.json", params={"api_key": OPEN311_KEY})
    mine = [u for u in r.json() if u["service_request_id"] == sid]
    assert mine and mine[0]["status"] == "OPEN" and mine[0]["external_status_code"] == "received"
    x = await intake.client.get(f"{BASE}/servicerequestupdates.xml", params={"api_key": OPEN311_KEY})
    assert ET.fromstring(x.content).tag == "service_request_updates"


async def test_paging_newest_first_with_spec_errors(intake: Intake) -> None:
    sids = []
    for i in range(3):
        (c,) = (await post(intake, description=f"翻页测试第{i}条")).json()  # type: ignore[attr-defined]
        sids.append(c["service_request_id"])
    params = {"service_request_id": ",".join(sids), "page_size": "2"}
    p1 = (await intake.client.get(f"{BASE}/requests.json", params=params | {"page": "1"})).json()
    p2 = (await intake.client.get(f"{BASE}/requests.json", params=params | {"page": "2"})).json()
    p3 = (await intake.client.get(f"{BASE}/requests.json", params=params | {"page": "3"})).json()
    assert [r["service_request_id"] for r in p1 + p2] == sids[::-1] and p3 == []
    assert len(p1) == 2 and len(p2) == 1
    for bad in ({"page": "0"}, {"page_size": "1001"}, {"page": "abc"}, {"page_size": "-1"}):
        r = await intake.client.get(f"{BASE}/requests.json", params=bad)
        assert r.status_code == 400 and r.json()[0]["code"] == 400, (bad, r.text)
    x = await intake.client.get(f"{BASE}/requests.xml", params={"page_size": "x"})
    assert x.status_code == 400 and ET.fromstring(x.content).find("error/code").text == "400"  # type: ignore[union-attr]


async def test_path_and_query_problems_are_spec_errors_never_422(intake: Intake) -> None:
    for path in (
        "/open311/v2/abc/services.json",
        f"{BASE}/services.{'x' * 20}",
        f"{BASE}/services/{'9' * 100}.json",
        f"{BASE}/requests/{'N' * 100}.json",
        f"{BASE}/requests/%00.json",
        f"{BASE}/tokens/{'t' * 100}.json",
    ):
        r = await intake.client.get(path)
        assert r.status_code == 404 and isinstance(r.json(), list) and r.json()[0]["code"] == 404, (path, r.text)
    r = await intake.client.get(f"{BASE}/requests.json", params={"service_code": "a\x00b"})
    assert r.status_code == 400 and r.json()[0]["code"] == 400


async def test_media_url_is_queued_and_published(intake: Intake) -> None:
    photo = f"https://fms.example.org/photo/{uuid.uuid4().hex}.jpeg"
    r = await intake.client.post(
        f"{BASE}/requests.json",
        data={
            "api_key": OPEN311_KEY,
            "service_code": "200102",
            "lat": "30.28",
            "long": "120.12",
            "description": "路面坑洼，附照片",
            "media_url": photo,
        },
    )
    assert r.status_code == 200, r.text
    sid = r.json()[0]["service_request_id"]
    one = (await intake.client.get(f"{BASE}/requests/{sid}.json")).json()[0]
    assert one["media_url"] == photo
    listed = (await intake.client.get(f"{BASE}/requests.json", params={"service_request_id": sid})).json()
    assert listed[0]["media_url"] == photo
    staff = (
        await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{sid}/attachments", headers=intake.staff("platform"))
    ).json()
    assert [a["state"] for a in staff] == ["pending"]  # fetched later by the worker, like 12345 attachments
    r = await post(intake, media_url="http://insecure.example/x.jpg", description="不安全的图片地址")
    assert r.status_code == 400 and "https" in r.json()[0]["description"]  # type: ignore[attr-defined]


async def test_post_servicerequestupdates(intake: Intake) -> None:
    (created,) = (await post(intake, description="垃圾桶满溢无人清理")).json()  # type: ignore[attr-defined]
    sid = created["service_request_id"]
    upd = {
        "api_key": OPEN311_KEY,
        "jurisdiction_id": "",
        "service_request_id": sid,
        "update_id": f"fms-{uuid.uuid4().hex[:8]}",
        "updated_datetime": datetime.now(UTC).isoformat(),
        "status": "OPEN",
        "description": "今天又满了，气味很大",
        "first_name": "小红",
        "phone": "13800138999",
    }
    r = await intake.client.post(f"{BASE}/servicerequestupdates.xml", data=upd)
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    assert root.tag == "service_request_updates" and root.find("request_update/update_id").text  # type: ignore[union-attr]
    history = (
        await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{sid}/history", headers=intake.staff("platform"))
    ).json()
    last = history[-1]
    assert last["action"] == "citizen_update" and last["to_status"] == "received" and "今天又满了" in last["note"]
    assert "13800138999" not in str(history) and "小红" not in str(history)
    ticket = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{sid}", headers=intake.staff("platform"))).json()
    assert ticket["status"] == "received"  # the citizen's status never moves the ticket
    # The feed FMS polls does not echo its own comments back.
    feed_ = (await intake.client.get(f"{BASE}/servicerequestupdates.json", params={"api_key": OPEN311_KEY})).json()
    assert [u for u in feed_ if u["service_request_id"] == sid and "今天又满了" in (u["description"] or "")] == []
    # FMS's own rules: a duplicate update_id is 400 "already exists"; required fields; api_key; ownership.
    r = await intake.client.post(f"{BASE}/servicerequestupdates.json", data=upd)
    assert r.status_code == 400 and "already exists" in r.json()[0]["description"]
    r = await intake.client.post(f"{BASE}/servicerequestupdates.json", data=upd | {"description": ""})
    assert r.status_code == 400 and "description" in r.json()[0]["description"]
    r = await intake.client.post(f"{BASE}/servicerequestupdates.json", data=upd | {"api_key": "nope"})
    assert r.status_code == 403
    r = await intake.client.post(
        f"{BASE}/servicerequestupdates.json", data=upd | {"service_request_id": "NOPE", "update_id": "u-404"}
    )
    assert r.status_code == 404
    hotline_ticket = await intake.report()  # not created through this Open311 client
    r = await intake.client.post(
        f"{BASE}/servicerequestupdates.json",
        data=upd | {"service_request_id": hotline_ticket["ticket_no"], "update_id": "u-other"},
    )
    assert r.status_code == 404
    r = await intake.client.post(
        f"{BASE}/servicerequestupdates.json", data=upd | {"update_id": "u-bad-date", "updated_datetime": "yesterday"}
    )
    assert r.status_code == 400
