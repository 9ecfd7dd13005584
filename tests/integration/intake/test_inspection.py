"""Campaign findings from CSV and XLSX: per-row validation, all-or-nothing, tied to the 点位."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date, timedelta

from openpyxl import Workbook
from sqlalchemy import select

from intake import store

from .conftest import TENANT, Intake

HEADER = ["问题编号", "点位编码", "点位名称", "点位类型", "问题描述", "分类编码", "整改期限", "地址", "经度", "纬度"]
SOON = (date.today() + timedelta(days=10)).isoformat()


def rows(prefix: str) -> list[list[object]]:
    return [
        [
            f"{prefix}-1",
            "DW-001",
            "文三路农贸市场",
            "农贸市场",
            "市场外围占道经营",
            "200301",
            SOON,
            "文三路 88 号",
            "",
            "",
        ],
        [
            f"{prefix}-2",
            "DW-002",
            "学院路背街小巷",
            "背街小巷",
            "墙面乱张贴小广告",
            "200105",
            SOON,
            "",
            "120.128",
            "30.276",
        ],
        [f"{prefix}-3", "DW-003", "翠苑一区", "老旧小区", "楼道堆放杂物", "200102", SOON, "翠苑一区 5 幢", "", ""],
    ]


def csv_bytes(data: list[list[object]], encoding: str = "utf-8-sig") -> bytes:
    lines = [",".join(HEADER)] + [",".join(str(c) for c in r) for r in data]
    return ("\n".join(lines) + "\n").encode(encoding)


def xlsx_bytes(data: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER)
    for r in data:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def upload(intake: Intake, batch: str, name: str, data: bytes, dry_run: bool = False) -> object:
    return await intake.client.post(
        f"/v1/tenants/{TENANT}/inspections/{batch}/import" + ("?dry_run=true" if dry_run else ""),
        files={"file": (name, data)},
        headers=intake.staff("supervisor"),
    )


async def test_csv_import_creates_tickets_tied_to_sites_and_is_idempotent(intake: Intake) -> None:
    batch = "CC2026-" + uuid.uuid4().hex[:6]
    data = csv_bytes(rows(batch), encoding="gb18030")
    r = await upload(intake, batch, "findings.csv", data)
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    report = r.json()  # type: ignore[attr-defined]
    assert len(report["created"]) == 3 and report["existing"] == 0 and not report["rejected"]
    tid = report["created"][1]["ticket_id"]
    async with intake.sessions() as s:
        payload = (await s.execute(select(store.outbox.c.payload).where(store.outbox.c.key == tid))).scalar_one()
    event = json.loads(payload)
    data_ = event.get("data", event)
    assert data_["channel"] == "inspection" and data_["site"]["name"] == "学院路背街小巷"
    assert data_["site"]["kind"] == "背街小巷" and data_["site"]["batch"] == batch and data_["site"]["code"] == "DW-002"
    assert data_["platform_due_at"].startswith(SOON) and data_["location"] is not None
    assert data_["origin"] == {"integration": f"inspection:{batch}", "external_id": f"{batch}-2"}
    again = (await upload(intake, batch, "findings.csv", data)).json()  # type: ignore[attr-defined]
    assert again["existing"] == 3 and again["created"] == []


async def test_xlsx_with_bad_rows_imports_nothing_and_reports_each_row(intake: Intake) -> None:
    batch = "CC2026-" + uuid.uuid4().hex[:6]
    data = rows(batch)
    data[0][6] = "2020-01-01"  # past deadline
    data[1][5] = "bad code!"  # category
    data.append(data[2][:])  # duplicate finding id
    r = await upload(intake, batch, "findings.xlsx", xlsx_bytes(data))
    assert r.status_code == 422  # type: ignore[attr-defined]
    err = r.json()["error"]  # type: ignore[attr-defined]
    assert err["code"] == "import_rejected"
    problems = {p["row"]: [e["code"] for e in p["errors"]] for p in err["details"]["rejected"]}
    assert problems[2] == ["deadline_in_past"] and problems[3] == ["string_pattern_mismatch"]
    assert problems[5] == ["duplicate_in_file"] and 4 not in problems
    async with intake.sessions() as s:
        n = (await s.execute(select(store.ticket.c.id).where(store.ticket.c.source == f"inspection:{batch}"))).all()
    assert n == []  # nothing half-imported
    ok = await upload(intake, batch, "findings.xlsx", xlsx_bytes(rows(batch)), dry_run=True)
    assert ok.status_code == 200 and ok.json()["created"] == [] and ok.json()["dry_run"]  # type: ignore[attr-defined]
    ok = await upload(intake, batch, "findings.xlsx", xlsx_bytes(rows(batch)))
    assert len(ok.json()["created"]) == 3  # type: ignore[attr-defined]


async def test_sheet_level_errors(intake: Intake) -> None:
    r = await upload(intake, "B1", "x.csv", "问题编号,点位名称\nA,B\n".encode())
    assert r.json()["error"]["code"] == "missing_columns"  # type: ignore[attr-defined]
    r = await upload(intake, "B1", "x.xlsx", b"PK\x03\x04 not really a zip")
    assert r.json()["error"]["code"] == "unreadable_sheet"  # type: ignore[attr-defined]
    r = await upload(intake, "B1", "x.csv", b'a\rb,"c\r\nd\x00')  # what schemathesis found: a bare CR
    assert r.status_code == 422  # type: ignore[attr-defined]
    r = await upload(intake, "B1", "x.csv", b"")
    assert r.json()["error"]["code"] == "empty_sheet"  # type: ignore[attr-defined]
    r = await intake.client.post(
        f"/v1/tenants/{TENANT}/inspections/B1/import",
        files={"file": ("x.csv", csv_bytes(rows("B1")))},
        headers=intake.staff("unit", "330106-CGJ"),
    )
    assert r.status_code == 403
