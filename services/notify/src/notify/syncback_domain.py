"""12345 sync-back decisions, pure: what to push for a lifecycle event, how to sign it, what is an ack.

The wire format mirrors intake's inbound scheme for 12345 pushes, so a platform that already signs
orders for us verifies our callbacks with the same code (headers in ``signed_headers``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Intake's lifecycle statuses (contracts ``TicketStatus``) in the platform's words.
STATUS_NAMES: dict[str, str] = {
    "received": "已受理",
    "rejected": "不予受理",
    "direct_closed": "直办",
    "merged": "并单",
    "awaiting_manual": "待派单",
    "dispatched": "已派单",
    "return_requested": "退单申请",
    "accepted": "已签收",
    "extension_requested": "延期申请",
    "replied": "已回复",
    "pending_callback": "待回访",
    "closed": "办结",
    "archived": "归档",
}

# Event-specific result fields pushed when present (the unit's reply, the callback result, reasons…).
RESULT_FIELDS = (
    "reply",
    "photo_count",
    "satisfaction",
    "resolved",
    "reason_code",
    "reason",
    "basis",
    "approved",
    "working_days",
    "redo_count",
    "changed_fields",
)


@dataclass(frozen=True)
class Order:
    """A ticket that came from a hotline platform: which integration and its own order id."""

    tenant: str
    integration: str
    external_id: str
    ticket_id: uuid.UUID
    ticket_no: str


def item_key(event_id: uuid.UUID, order: Order) -> str:
    """One push per (event, order): the dedupe key of the queue row."""
    return f"{event_id}:{order.integration}:{order.external_id}"


def received_payload(event_type: str, at: datetime, order: Order) -> dict[str, Any]:
    """The first push for an order: accepted, with our ticket number (the platform's 对方单号)."""
    return {
        "order_no": order.external_id,
        "ticket_no": order.ticket_no,
        "event": event_type,
        "status": "received",
        "status_name": STATUS_NAMES["received"],
        "from_status": None,
        "at": at.isoformat(),
    }


def dispatched_payload(event_type: str, data: Any, order: Order) -> dict[str, Any]:
    """已派单 (or 改派 when ``previous_unit_code`` is set): the unit(s) the order is now with."""
    body: dict[str, Any] = {
        "order_no": order.external_id,
        "ticket_no": order.ticket_no,
        "event": event_type,
        "status": "dispatched",
        "status_name": "改派" if data.previous_unit_code else STATUS_NAMES["dispatched"],
        "from_status": None,
        "at": data.dispatched_at.isoformat(),
        "unit_code": data.unit_code,
        "co_unit_codes": list(data.co_unit_codes),
    }
    if data.previous_unit_code:
        body["previous_unit_code"] = data.previous_unit_code
    return body


def transition_payload(event_type: str, data: Any, order: Order) -> dict[str, Any]:
    """A status change or result of a lifecycle event (contracts ``Transition`` and subclasses)."""
    body: dict[str, Any] = {
        "order_no": order.external_id,
        "ticket_no": order.ticket_no,
        "event": event_type,
        "status": data.to_status,
        "status_name": STATUS_NAMES.get(data.to_status, data.to_status),
        "from_status": data.from_status,
        "at": data.at.isoformat(),
        "unit_code": data.unit_code,
        "note": data.note,
    }
    for name in RESULT_FIELDS:
        value = getattr(data, name, None)
        if value is not None:
            body[name] = value
    return body


def request_body(payload: dict[str, Any], *, sequence: int, event_id: uuid.UUID) -> bytes:
    """The exact bytes that are signed and sent; ``sequence`` increases per order (not contiguous)."""
    return json.dumps(
        {**payload, "sequence": sequence, "event_id": str(event_id)}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """hex(HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + raw body)), as intake verifies inbound."""
    return hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(
    *, api_key: str, secret: str, idempotency_key: str, body: bytes, timestamp: int, nonce: str
) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Api-Key": api_key,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": signature(secret, ts, nonce, body),
        "Idempotency-Key": idempotency_key,
    }


@dataclass(frozen=True)
class Answer:
    acked: bool
    code: str
    message: str


def classify(status_code: int, body: bytes) -> Answer:
    """Only a 2xx whose JSON body says ``code == 0`` is an acknowledgement; everything else is retried."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    msg = str(parsed.get("msg", "")) if isinstance(parsed, dict) else body[:200].decode("utf-8", "replace")
    if 200 <= status_code < 300 and code in (0, "0"):
        return Answer(True, "ack", msg)
    if 200 <= status_code < 300:
        return Answer(False, f"nack.{code}" if code is not None else "no_ack_body", msg)
    return Answer(False, f"http.{status_code}", msg)


def backoff_s(attempts: int, base_s: float, cap_s: float, rnd: float) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempts-1))], never below a tenth of base."""
    ceiling: float = min(cap_s, base_s * 2.0 ** max(0, min(attempts - 1, 30)))
    return max(base_s / 10, ceiling * rnd)
