from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gridline_contracts.escalation import SlaClockStartedV1
from gridline_contracts.intake import ReporterRef, TicketReceivedV1
from gridline_contracts.notify import NotificationFailedV1, NotificationSentV1
from notify import domain

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def received(reporter: ReporterRef) -> TicketReceivedV1:
    return TicketReceivedV1(
        ticket_id=uuid.UUID(int=5),
        ticket_no="330106-20261123-000005",
        channel="citizen",
        category_code="200102",
        description="d",
        reported_at=NOW,
        received_at=NOW,
        reporter=reporter,
    )


def test_reporter_gets_a_receipt_only_when_reachable() -> None:
    eid = uuid.UUID(int=9)
    (req,) = domain.on_ticket_received(eid, received(ReporterRef(contact_token="tok")))
    assert req.template == "ticket_received" and req.params == {"order": "330106-20261123-000005"}
    assert req.recipient.contact_token == "tok" and req.dedupe_key == f"{eid}:reporter"
    assert domain.on_ticket_received(eid, received(ReporterRef())) == []
    assert domain.on_ticket_received(eid, received(ReporterRef(contact_token="t", anonymous=True))) == []


def test_unit_is_told_the_deadline_in_local_time() -> None:
    e = SlaClockStartedV1(
        ticket_id=uuid.UUID(int=5),
        ticket_no="N1",
        unit_code="330106-CG",
        policy_key="standard-5wd",
        started_at=NOW,
        warn_at=NOW,
        due_at=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
        time_limit="5 wd",
    )
    (req,) = domain.on_clock_started(uuid.UUID(int=1), e)
    assert req.recipient.kind == "unit" and req.recipient.ref == "330106-CG"
    assert req.params == {"order": "N1", "due": "11月30日17:30"}


def _attempt(outcome: str, attempts: int = 1) -> tuple[str, list[NotificationSentV1 | NotificationFailedV1]]:
    return domain.after_attempt(
        notification_id=uuid.UUID(int=1),
        ticket_id=None,
        template="t",
        recipient_kind="reporter",
        masked="138****0000",
        provider="aliyun",
        outcome=outcome,
        code="c",
        message="m",
        provider_message_id="biz",
        attempts=attempts,  # type: ignore[arg-type]
        max_attempts=3,
        now=NOW,
    )


def test_attempt_outcomes() -> None:
    status, (sent,) = _attempt("sent")
    assert status == "sent" and isinstance(sent, NotificationSentV1) and sent.provider_message_id == "biz"
    assert _attempt("retryable", 1) == ("pending", [])
    status, (failed,) = _attempt("retryable", 3)
    assert status == "failed" and isinstance(failed, NotificationFailedV1)
    assert _attempt("rejected")[0] == "failed"
    # Never resent blindly: the provider may have delivered it.
    assert _attempt("ambiguous") == ("ambiguous", [])
