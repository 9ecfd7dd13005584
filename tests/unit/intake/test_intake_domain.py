from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from gridline_contracts.intake import ReporterRef
from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from intake import domain
from intake.domain import Status, TransitionRefused

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def report(**kw: object) -> domain.Report:
    base: dict[str, object] = dict(
        tenant="330106",
        channel="citizen",
        category_code="200102",
        description="小区门口垃圾满溢",
        demand_type="complaint",
        priority="normal",
        location=domain.Location(120.1, 30.2, "gcj02", 120.105, 30.198),
        address=None,
        area_code=None,
        reported_at=NOW,
        reporter=ReporterRef(contact_token="v1.t1.sealed", masked_phone="138****8000"),
    )
    base.update(kw)
    return domain.Report(**base)  # type: ignore[arg-type]


def assigned(ticket_id: uuid.UUID) -> DispatchAssignedV1:
    return DispatchAssignedV1(
        ticket_id=ticket_id,
        unit_code="330106-CG",
        unit_name="城管局",
        rule_id="R1",
        directory_version=3,
        sla_policy_key="standard-5wd",
        match_method="point",
        confidence=1.0,
        decided_at=NOW,
        grid_code="330106001001001",
    )


def test_receive_emits_ticket_received_with_masked_reporter() -> None:
    t, h, events = domain.receive(report(), ticket_id=uuid.UUID(int=1), ticket_no="330106-20261123-000001", now=NOW)
    assert t.status is Status.RECEIVED and h.to_status is Status.RECEIVED
    (e,) = events
    assert e.ticket_no == "330106-20261123-000001"
    assert e.location is not None and (e.location.lon, e.location.lat) == (120.1, 30.2)
    assert e.reporter.masked_phone == "138****8000" and e.reporter.contact_token == "v1.t1.sealed"


@pytest.mark.parametrize(
    "kw",
    [
        {"reporter": ReporterRef(contact_token="x", masked_phone="138****8000", confidential=True)},
        {"demand_type": "report"},
    ],
)
def test_confidential_and_whistleblowing_reports_hide_the_reporter(kw: dict[str, object]) -> None:
    _, _, (e,) = domain.receive(report(**kw), ticket_id=uuid.uuid4(), ticket_no="n", now=NOW)
    assert e.reporter.masked_phone is None and e.reporter.confidential is True


def test_dispatch_moves_to_dispatched_and_emits() -> None:
    t, _, _ = domain.receive(report(), ticket_id=uuid.uuid4(), ticket_no="n", now=NOW)
    t2, h, (e,) = domain.apply_dispatch(t, assigned(t.id), NOW)
    assert t2.status is Status.DISPATCHED and t2.unit_code == "330106-CG" and t2.version == t.version + 1
    assert e.unit_code == "330106-CG" and e.sla_policy_key == "standard-5wd" and e.dispatched_at == NOW
    assert "城管局" in h.note and e.previous_unit_code is None
    # The same decision again (routing never reassigns to the same unit) changes nothing.
    with pytest.raises(TransitionRefused) as info:
        domain.apply_dispatch(t2, assigned(t.id), NOW)
    assert info.value.code == "already_dispatched"
    # Once signed, routing cannot move it.
    t3 = domain.sign(t2, domain.Actor(role="unit", id="u", unit_code="330106-CG"), NOW).ticket
    with pytest.raises(TransitionRefused) as info:
        domain.apply_dispatch(t3, assigned(t.id), NOW)
    assert info.value.code == "not_dispatchable"


def test_needs_manual_then_manual_dispatch() -> None:
    t, _, _ = domain.receive(report(), ticket_id=uuid.uuid4(), ticket_no="n", now=NOW)
    manual = DispatchNeedsManualV1(ticket_id=t.id, reason_code="no_rule", reason="无派单规则", decided_at=NOW)
    t2, h = domain.apply_needs_manual(t, manual)
    assert t2.status is Status.AWAITING_MANUAL and "no_rule" in h.note
    with pytest.raises(TransitionRefused):
        domain.apply_needs_manual(t2, manual)
    t3, _, _ = domain.apply_dispatch(t2, assigned(t.id), NOW)
    assert t3.status is Status.DISPATCHED
