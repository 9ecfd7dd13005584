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
