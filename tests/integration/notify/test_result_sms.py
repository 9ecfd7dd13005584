"""办结告知: a closed ticket's reporter gets one SMS with the ticket number (real Kafka, PostgreSQL,
notify as a process, the fake Aliyun checking signatures); never for hotline orders or anonymous
reporters, never twice for a redelivered event."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from gridline_contracts.envelope import Envelope
from gridline_contracts.intake import OrderOrigin, ReporterRef, TicketClosedV1
from gridline_pii import Keyring

from .conftest import TENANT, NotifyRig


def closed(rig: NotifyRig, phone: str, **overrides: Any) -> Envelope[Any]:
    tid = uuid.uuid4()
    token = Keyring.from_spec(rig.transit_key).seal(phone, "reporter-contact")
    fields: dict[str, Any] = {
        "ticket_id": tid,
        "ticket_no": f"{TENANT}-IT-{tid.hex[:10]}",
        "from_status": "pending_callback",
        "to_status": "closed",
        "actor_role": "platform",
        "actor": "platform-1",
        "at": datetime.now(UTC),
        "unit_code": "330106005",
        "reply": "已清理完毕",
        "channel": "citizen",
        "reporter": ReporterRef(contact_token=token, masked_phone=phone[:3] + "****" + phone[-4:]),
    }
    data = TicketClosedV1(**(fields | overrides))
    return Envelope(source="intake", tenant=TENANT, subject=str(tid), correlation_id=str(tid), data=data)


def without_quiet_hours(rig: NotifyRig) -> None:
    """A result may wait for the end of quiet hours (22:00–08:00 Beijing): not what these tests check."""
    r = httpx.put(f"{rig.notify.url}/v1/tenants/{TENANT}/limits", json={"quiet_start": None, "per_recipient_day": 50})
    r.raise_for_status()


def test_the_reporter_hears_the_ticket_is_closed_once(rig: NotifyRig) -> None:
    without_quiet_hours(rig)
    env = closed(rig, "13700001201")
    rig.publish(env, env)  # redelivered: still one message
    note = rig.settled(str(env.data.ticket_id))
    assert (note["template"], note["status"], note["recipient_kind"]) == ("ticket_result", "sent", "reporter")
    (msg,) = rig.sent(rig.aliyun, env.data.ticket_no)
    assert msg["phone"] == "13700001201" and msg["template"] == "SMS_900000006"


def test_hotline_orders_and_anonymous_reporters_get_no_result_sms(rig: NotifyRig) -> None:
    without_quiet_hours(rig)
    # A 12345 platform tells its own caller (notify pushes the result back to it instead).
    hotline = closed(rig, "13700001202", channel="hotline")
    pushed = closed(rig, "13700001203", origin=OrderOrigin(integration="hotline-1", external_id="EXT-1"))
    anonymous = closed(rig, "13700001204", reporter=ReporterRef(anonymous=True))
    control = closed(rig, "13700001205")
    rig.publish(hotline, pushed, anonymous, control)
    rig.settled(str(control.data.ticket_id))  # consumed in order on one partition key each; give a moment
    time.sleep(1.0)
    for env in (hotline, pushed, anonymous):
        assert rig.notifications(str(env.data.ticket_id)) == []
