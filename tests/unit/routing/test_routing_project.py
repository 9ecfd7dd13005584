"""The pure fold that rebuilds routing's row of a ticket from intake's events (rebuild-tickets)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gridline_contracts.intake import (
    GeoPoint,
    ReporterRef,
    TicketArchivedV1,
    TicketDispatchedV1,
    TicketMergedV1,
    TicketReceivedV1,
    TicketReturnRequestedV1,
    TicketSignedV1,
    TicketUnmergedV1,
)
from routing import domain

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TID = uuid.uuid4()
PARENT = uuid.uuid4()


def received() -> TicketReceivedV1:
    return TicketReceivedV1(
        ticket_id=TID,
        ticket_no="330110-1",
        channel="hotline",
        category_code="200102",
        description="垃圾",
        location=GeoPoint(lon=120.1, lat=30.2),
        reported_at=T0,
        received_at=T0,
        reporter=ReporterRef(caller_hash="ab" * 32),
    )


def step(cls: Any, frm: str, to: str, **kw: Any) -> Any:
    return cls(
        ticket_id=TID, ticket_no="330110-1", from_status=frm, to_status=to, actor_role="unit", actor="u", at=T0, **kw
    )


def fold(*events: Any) -> domain.Projected | None:
    state = None
    for i, e in enumerate(events):
        state = domain.project(state, e, tenant="330110", at=T0 + timedelta(minutes=i))
    return state


def test_received_only_is_undecided_and_keeps_what_duplicates_need() -> None:
    p = fold(received())
    assert p is not None and not p.decided and p.status == "routing"
    assert p.ticket.location == (120.1, 30.2) and p.ticket.caller_hash == "ab" * 32 and p.ticket.tenant == "330110"
    assert fold(received(), received()) == p  # re-published: nothing changes


def test_lifecycle_to_routing_statuses() -> None:
    dispatched = TicketDispatchedV1(
        ticket_id=TID,
        ticket_no="330110-1",
        category_code="200102",
        unit_code="U1",
        co_unit_codes=["U2"],
        grid_code="G",
        sla_policy_key="x",
        dispatched_at=T0,
        reporter=ReporterRef(),
    )
    p = fold(received(), dispatched)
    assert p is not None and (p.status, p.unit_code, p.co_unit_codes, p.grid_code) == ("dispatched", "U1", ("U2",), "G")
    p = fold(received(), dispatched, step(TicketSignedV1, "dispatched", "accepted"))
    assert p is not None and (p.status, p.unit_code) == ("accepted", "U1")
    returned = step(TicketReturnRequestedV1, "dispatched", "return_requested", reason_code="x", basis="y")
    p = fold(received(), dispatched, returned)
    assert p is not None and p.status == "return_requested" and p.unit_code == "U1"
    p = fold(received(), dispatched, step(TicketArchivedV1, "closed", "archived"))
    assert p is not None and p.status == "closed" and p.decided


def test_merge_unmerge_and_manual_queue() -> None:
    merged = step(TicketMergedV1, "received", "merged", parent_ticket_id=PARENT, parent_ticket_no="p")
    p = fold(received(), merged)
    assert p is not None and (p.status, p.parent_ticket_id, p.unit_code) == ("merged", PARENT, None)
    unmerged = step(TicketUnmergedV1, "merged", "received", former_parent_ticket_id=PARENT)
    p = fold(received(), merged, unmerged)
    assert p is not None and p.parent_ticket_id is None and not p.decided  # routing decides it again
    queued = step(TicketSignedV1, "received", "awaiting_manual")  # any transition into the queue
    p = fold(received(), queued)
    assert p is not None and p.status == "awaiting_manual" and p.queued_at == T0 + timedelta(minutes=1)


def test_history_without_received_cannot_be_rebuilt() -> None:
    assert fold(step(TicketSignedV1, "dispatched", "accepted")) is None
