"""Carrier delivery receipts: the providers' report formats → `domain.Receipt` → delivery state.

Aliyun pushes ``SmsReport`` (a JSON array, reference §1.8), Tencent pushes its callback array and
also serves ``PullSmsSendStatus`` (§2.6). All three are at-least-once, so a receipt is stored under
the provider's own report key and applied only the first time it is seen. Phone numbers in reports
are reduced to a keyed hash before anything is stored or logged.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from gridline_pii import lookup_hash

from . import domain, metrics, store

log = logging.getLogger(__name__)

_BEIJING = ZoneInfo("Asia/Shanghai")


class BadReceipt(ValueError):
    """A report that does not have the provider's shape."""


def _local_time(value: Any) -> datetime | None:
    """Providers' report times are Beijing wall-clock strings without a zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING).astimezone(UTC)
    except ValueError:
        return None


def _uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def parse_aliyun(items: Any, hmac_key: bytes) -> list[domain.Receipt]:
    """``[{"phone_number","send_time","report_time","success","err_code","err_msg","biz_id","out_id"}]``."""
    if not isinstance(items, list):
        raise BadReceipt("SmsReport must be a JSON array")
    out = []
    for item in items:
        if not isinstance(item, dict) or not item.get("biz_id") or not isinstance(item.get("success"), bool):
            raise BadReceipt("each report needs biz_id and a boolean success")
        phone = str(item.get("phone_number", ""))
        out.append(
            domain.Receipt(
                provider="aliyun",
                key=f"{item['biz_id']}:{lookup_hash(phone, hmac_key)[:16]}",
                out_id=_uuid(item.get("out_id")),
                provider_message_id=str(item["biz_id"]),
                delivered=item["success"],
                code=str(item.get("err_code") or ("DELIVERED" if item["success"] else "UNKNOWN")),
                reported_at=_local_time(item.get("report_time")),
            )
        )
    return out


def parse_tencent_callback(items: Any) -> list[domain.Receipt]:
    """``[{"user_receive_time","nationcode","mobile","report_status","errmsg","description","sid"}]``."""
    if not isinstance(items, list):
        raise BadReceipt("the status callback must be a JSON array")
    out = []
    for item in items:
        if not isinstance(item, dict) or not item.get("sid") or item.get("report_status") not in ("SUCCESS", "FAIL"):
            raise BadReceipt("each report needs sid and report_status SUCCESS|FAIL")
        out.append(
            domain.Receipt(
                provider="tencent",
                key=str(item["sid"]),
                out_id=None,
                provider_message_id=str(item["sid"]),
                delivered=item["report_status"] == "SUCCESS",
                code=str(item.get("errmsg") or item["report_status"]),
                reported_at=_local_time(item.get("user_receive_time")),
            )
        )
    return out


def parse_tencent_pull(items: list[dict[str, Any]]) -> list[domain.Receipt]:
    """``PullSmsSendStatusSet`` entries: SerialNo, ReportStatus, SessionContext, UserReceiveTime (unix)."""
    out = []
    for item in items:
        if not item.get("SerialNo"):
            continue
        at = item.get("UserReceiveTime")
        out.append(
            domain.Receipt(
                provider="tencent",
                key=str(item["SerialNo"]),
                out_id=_uuid(item.get("SessionContext")),
                provider_message_id=str(item["SerialNo"]),
                delivered=item.get("ReportStatus") == "SUCCESS",
                code=str(item.get("Description") or item.get("ReportStatus") or ""),
                reported_at=datetime.fromtimestamp(at, UTC) if isinstance(at, int) else None,
            )
        )
    return out


async def ingest(session: AsyncSession, receipts: list[domain.Receipt]) -> tuple[int, int]:
    """Store and apply receipts in the caller's transaction → (new ones, matched to our sends)."""
    if not receipts:
        return 0, 0
    provider = receipts[0].provider
    out_ids = [uuid.UUID(r.out_id) for r in receipts if r.out_id]
    message_ids = [r.provider_message_id for r in receipts if r.provider_message_id]
    by_id, by_msg = await store.match_attempts(session, provider, out_ids, message_ids)
    new = matched = 0
    for r in receipts:
        hit = (by_id.get(uuid.UUID(r.out_id)) if r.out_id else None) or by_msg.get(r.provider_message_id or "")
        fresh = await store.add_receipt(
            session,
            provider=r.provider,
            key=r.key,
            attempt_id=hit.id if hit else None,
            notification_id=hit.notification_id if hit else None,
            out_id=uuid.UUID(r.out_id) if r.out_id else None,
            provider_message_id=r.provider_message_id,
            delivered=r.delivered,
            code=r.code[:100],
            reported_at=r.reported_at,
        )
        if not fresh:
            continue
        new += 1
        metrics.RECEIPTS.labels(r.provider, "delivered" if r.delivered else "failed").inc()
        if hit is None:  # kept: the send's outcome may not be recorded yet (`adopt`)
            log.info("receipt from %s matches no recorded send yet", r.provider)
            continue
        matched += 1
        delivery = domain.delivery_after(hit.delivery, r)
        await store.set_delivery(session, hit.notification_id, delivery, r.reported_at if r.delivered else None)
    return new, matched


async def adopt(
    session: AsyncSession, sent_attempt_ids: list[uuid.UUID] | None = None, since: datetime | None = None
) -> int:
    """Apply receipts that arrived before the sends they report on were recorded (fast carriers)."""
    rows = await store.adopt_early_receipts(session, sent_attempt_ids, since)
    best: dict[uuid.UUID, Any] = {}
    for row in rows:  # several reports for one message: delivered wins
        if row.notification_id not in best or row.delivered:
            best[row.notification_id] = row
    for nid, row in best.items():
        await store.set_delivery(session, nid, "delivered" if row.delivered else "failed", row.reported_at)
    return len(best)
