"""Campaign inspection findings (创城督查/测评 问题清单) imported from CSV or XLSX.

Every row is validated first; if any row is rejected, nothing is imported and the answer lists each
rejected row with its problems (the sheet is fixed and uploaded again). Otherwise every finding
becomes a ticket in one transaction, tied to its 点位 (``site`` on ``ticket.received``, by which
routing finds the 包抓 sponsor) and due by the end of its 整改期限 day. Re-importing a sheet is safe:
findings already imported for the batch are counted as ``existing``.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from openpyxl import load_workbook
from pydantic import BaseModel, Field, ValidationError, field_validator

from gridline_boot.http import ApiError
from gridline_contracts.intake import InspectionSite, OrderOrigin, ReporterRef
from gridline_geo.crs import to_wgs84

from . import domain, store
from .access import CallerDep, DepsDep
from .api import SHANGHAI, admit, new_query_code
from .inputs import Input, TenantPath

MAX_ROWS = 5000
HEADERS = {
    "问题编号": "finding_id",
    "督查编号": "finding_id",
    "点位编码": "site_code",
    "点位名称": "site_name",
    "点位类型": "site_kind",
    "问题描述": "description",
    "分类编码": "category_code",
    "整改期限": "deadline",
    "地址": "address",
    "经度": "lon",
    "纬度": "lat",
    "坐标系": "crs",
    "区划代码": "area_code",
}
FIELDS = set(HEADERS.values())
BatchPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z_.-]{1,40}$", description="督查批次")]


class FindingRow(Input):
    finding_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.:-]+$")
    site_code: str | None = Field(default=None, max_length=64)
    site_name: str = Field(min_length=1, max_length=200)
    site_kind: str = Field(min_length=1, max_length=50)
    description: str = Field(min_length=2, max_length=4000)
    category_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    deadline: date
    address: str | None = Field(default=None, max_length=500)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    crs: Literal["wgs84", "gcj02", "bd09"] = "gcj02"
    area_code: str | None = Field(default=None, pattern=r"^\d{6,12}$")

    @field_validator("deadline", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, str):
            return re.sub(r"[年月/.]", "-", v.strip()).removesuffix("日")
        return v

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v


class RowProblem(BaseModel):
    row: int = Field(description="表格行号（含表头，从 1 起）")
    finding_id: str | None
    errors: list[dict[str, str]]


class ImportReport(BaseModel):
    batch: str
    rows: int
    created: list[dict[str, str]] = []
    existing: int = 0
    rejected: list[RowProblem] = []
    dry_run: bool = False


def read_sheet(data: bytes) -> list[dict[str, Any]]:
    """Rows as dicts keyed by our field names; XLSX (by its zip magic) or CSV (UTF-8 or GB18030)."""
    if data[:4] == b"PK\x03\x04":
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a broken file
            raise ApiError(422, "unreadable_sheet", "无法读取 XLSX 文件") from exc
        ws = wb.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
    else:
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ApiError(422, "unreadable_sheet", "CSV 须为 UTF-8 或 GB18030 编码")
        try:
            rows = [list(r) for r in csv.reader(io.StringIO(text, newline=""))]
        except csv.Error as exc:
            raise ApiError(422, "unreadable_sheet", f"CSV 格式错误：{exc}") from exc
    rows = [r for r in rows if any(c not in (None, "") for c in r)]
    if not rows:
        raise ApiError(422, "empty_sheet", "表格为空")
    header = [HEADERS.get(str(h).strip(), str(h).strip()) if h is not None else "" for h in rows[0]]
    missing = {"finding_id", "site_name", "site_kind", "description", "category_code", "deadline"} - set(header)
    if missing:
        raise ApiError(422, "missing_columns", "表头缺少必填列", {"missing": sorted(missing)})
    if len(rows) - 1 > MAX_ROWS:
        raise ApiError(422, "too_many_rows", f"单次最多导入 {MAX_ROWS} 行")
    return [
        {k: (v.strip() if isinstance(v, str) else v) for k, v in zip(header, r, strict=False) if k in FIELDS}
        for r in rows[1:]
    ]


def validate(raw: list[dict[str, Any]], today: date) -> tuple[list[FindingRow], list[RowProblem]]:
    good: list[FindingRow] = []
    bad: list[RowProblem] = []
    seen: set[str] = set()
    for i, r in enumerate(raw, start=2):
        errors: list[dict[str, str]] = []
        row = None
        try:
            row = FindingRow.model_validate(r)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(map(str, e["loc"])), "code": e["type"], "message": e["msg"]} for e in exc.errors()
            ]
        if row is not None:
            if row.finding_id in seen:
                errors.append({"field": "finding_id", "code": "duplicate_in_file", "message": "问题编号在表格中重复"})
            if row.deadline < today:
                errors.append({"field": "deadline", "code": "deadline_in_past", "message": "整改期限早于今天"})
            if (row.lon is None) != (row.lat is None):
                errors.append({"field": "lon", "code": "incomplete_location", "message": "经度和纬度须同时填写"})
            if row.lon is None and not row.address:
                errors.append({"field": "address", "code": "location_required", "message": "请填写地址或经纬度"})
            seen.add(row.finding_id)
        if errors:
            bad.append(RowProblem(row=i, finding_id=str(r.get("finding_id") or "") or None, errors=errors))
        elif row is not None:
            good.append(row)
    return good, bad


def to_report(tenant: str, batch: str, row: FindingRow) -> domain.Report:
    location = None
    if row.lon is not None and row.lat is not None:
        lon, lat = to_wgs84(row.lon, row.lat, row.crs)
        location = domain.Location(lon, lat, row.crs, row.lon, row.lat)
    due = datetime.combine(row.deadline, time(23, 59, 59), SHANGHAI).astimezone(UTC)
    return domain.Report(
        tenant=tenant,
        channel="inspection",
        category_code=row.category_code,
        description=row.description,
        demand_type=None,
        priority="normal",
        location=location,
        address=row.address,
        area_code=row.area_code,
        reported_at=datetime.now(UTC),
        reporter=ReporterRef(anonymous=True),
        platform_due_at=due,
        origin=OrderOrigin(integration=f"inspection:{batch}", external_id=row.finding_id),
        site=InspectionSite(code=row.site_code, name=row.site_name, kind=row.site_kind, batch=batch),
    )


def build_inspection_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tenants/{tenant}/inspections", tags=["inspection"])

    @router.post("/{batch}/import", response_model=ImportReport)
    async def import_findings(
        tenant: TenantPath,
        batch: BatchPath,
        request: Request,
        deps: DepsDep,
        p: CallerDep,
        file: Annotated[UploadFile, File(description="问题清单：CSV（UTF-8/GB18030）或 XLSX")],
        dry_run: Annotated[bool, Query(description="只校验，不导入")] = False,
    ) -> Any:
        """Import a batch of inspection findings; all rows or none (rejected rows are reported)."""
        if p.kind != "staff" or p.role not in ("platform", "supervisor"):
            raise ApiError(403, "role_not_allowed", "只有平台或督查人员可以导入问题清单")
        data = await file.read(deps.max_upload_bytes + 1)
        if len(data) > deps.max_upload_bytes:
            raise ApiError(413, "file_too_large", "文件过大")
        now = datetime.now(UTC)
        rows, rejected = validate(read_sheet(data), now.astimezone(SHANGHAI).date())
        report = ImportReport(batch=batch, rows=len(rows) + len(rejected), rejected=rejected, dry_run=dry_run)
        if rejected:
            raise ApiError(
                422, "import_rejected", f"{len(rejected)} 行未通过校验，未导入任何数据", report.model_dump(mode="json")
            )
        if dry_run:
            return report
        cid = getattr(request.state, "correlation_id", None) or str(uuid.uuid4())
        async with deps.sessions() as s, s.begin():
            for row in rows:
                if await store.find_by_source(s, tenant, f"inspection:{batch}", row.finding_id) is not None:
                    report.existing += 1
                    continue
                t = await admit(
                    s, to_report(tenant, batch, row), None, new_query_code(), now, cid, numbers=deps.ticket_numbers
                )
                report.created.append({"finding_id": row.finding_id, "ticket_no": t.ticket_no, "ticket_id": str(t.id)})
        for _ in report.created:
            deps.metrics_received("inspection")
        return report

    return router
