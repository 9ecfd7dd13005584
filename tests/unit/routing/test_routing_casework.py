"""Pure rules for duplicates (一事多报), manual dispatch and 退单 review, on a small synthetic city."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gridline_contracts.routing import DispatchAssignedV1, DispatchNeedsManualV1
from routing import domain, synthcity
from routing.directory import Directory, DuplicatePolicy, assemble, load_bundle, load_geojson
from routing.domain import OpenTicket, Refused, ReturnPolicy, ReturnRequest, TicketToRoute
from routing.gridindex import GridIndex

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
POLICY = DuplicatePolicy(radius_m=100, window_h=72, same_address=True)


@pytest.fixture(scope="module")
def small() -> tuple[synthcity.SynthCity, Directory, GridIndex]:
    city = synthcity.generate(100, seed=3)
    grids, _ = load_geojson(city.grids)
    bundle, _ = load_bundle(city.bundle)
    directory, report = assemble(bundle, grids)
    assert report.ok
    return city, directory, GridIndex.build(directory.grids)


def ticket(
    category: str = "200102", point: tuple[float, float] | None = None, address: str | None = None
) -> TicketToRoute:
    return TicketToRoute(uuid.uuid4(), "330110", category, location=point, address=address)


def open_ticket(t: TicketToRoute, received: datetime, status: str = "dispatched", **kw: object) -> OpenTicket:
    return OpenTicket(t, f"NO-{t.ticket_id.hex[:4]}", received, status, **kw)  # type: ignore[arg-type]


def test_distance_is_metres_on_the_sphere() -> None:
    assert domain.distance_m((120.0, 30.0), (120.0, 30.0)) == 0
    assert 110_000 < domain.distance_m((120.0, 30.0), (120.0, 31.0)) < 112_000


def test_nearest_open_ticket_of_same_category_within_radius_and_window() -> None:
    new = ticket(point=(120.1, 30.2))
    near = open_ticket(ticket(point=(120.1003, 30.2)), NOW - timedelta(hours=2))
    nearer = open_ticket(ticket(point=(120.1001, 30.2)), NOW - timedelta(hours=70))
    far = open_ticket(ticket(point=(120.11, 30.2)), NOW - timedelta(hours=1))
    old = open_ticket(ticket(point=(120.1, 30.2)), NOW - timedelta(hours=73))
    other_cat = open_ticket(ticket("300101", point=(120.1, 30.2)), NOW)
    closed = open_ticket(ticket(point=(120.1, 30.2)), NOW, status="closed")
    child = open_ticket(ticket(point=(120.1, 30.2)), NOW, parent_ticket_id=uuid.uuid4())
    found = domain.find_duplicate(new, NOW, [near, far, old, other_cat, closed, child, nearer], POLICY, NOW)
    assert found is not None and found.parent is nearer
    assert found.event.rule == "radius:100m/72h" and 9 < (found.event.distance_m or 0) < 11
    assert domain.find_duplicate(new, NOW, [far, old, other_cat, closed, child], POLICY, NOW) is None


def test_never_across_tenants_and_off_when_disabled() -> None:
    new = ticket(point=(120.1, 30.2))
    foreign = open_ticket(TicketToRoute(uuid.uuid4(), "330106", "200102", location=(120.1, 30.2)), NOW)
    assert domain.find_duplicate(new, NOW, [foreign], POLICY, NOW) is None
    same = open_ticket(ticket(point=(120.1, 30.2)), NOW)
    assert domain.find_duplicate(new, NOW, [same], DuplicatePolicy(100, 72, True, enabled=False), NOW) is None


def test_same_address_without_coordinates() -> None:
    new = ticket(address="文源路 35 號")
    earlier = open_ticket(ticket(address="文源路35号"), NOW - timedelta(hours=5))
    found = domain.find_duplicate(new, NOW, [earlier], POLICY, NOW)
    assert found is not None and found.event.rule == "same_address/72h" and found.event.distance_m is None
    no_addr = DuplicatePolicy(100, 72, same_address=False)
    assert domain.find_duplicate(new, NOW, [earlier], no_addr, NOW) is None


def test_category_policy_overrides_defaults() -> None:
    merged = DuplicatePolicy(radius_m=30).resolve(POLICY)
    assert (merged.radius_m, merged.window_h, merged.same_address) == (30, 72, True)
    assert not DuplicatePolicy(enabled=False).resolve(POLICY).enabled


def test_manual_assignment_checks_the_directory(small: tuple[synthcity.SynthCity, Directory, GridIndex]) -> None:
    city, directory, index = small
    t = ticket("100101", point=city.cell_centre(2, 2))
    d = domain.manual_assignment(t, directory, index, NOW, unit_code="330110-SW", dispatcher="d1")
    assert isinstance(d.event, DispatchAssignedV1)
    assert (d.event.match_method, d.event.rule_id, d.event.grid_code) == ("manual", "manual", city.cell_code(2, 2))
    with pytest.raises(Refused) as exc:
        domain.manual_assignment(t, directory, index, NOW, unit_code=city.cell_code(2, 2)[:9], dispatcher="d1")
    assert exc.value.code == "department_only"
    with pytest.raises(Refused) as exc:
        domain.manual_assignment(t, directory, index, NOW, unit_code="NOPE", dispatcher="d1")
    assert exc.value.code == "unknown_unit"
    with pytest.raises(Refused) as exc:
        domain.manual_assignment(
            t, directory, index, NOW, unit_code="330110-SW", dispatcher="d1", exclude_units=frozenset({"330110-SW"})
        )
    assert exc.value.code == "unit_returned"
    with pytest.raises(Refused) as exc:
        domain.manual_assignment(ticket("999999"), directory, index, NOW, unit_code="330110-SW", dispatcher="d1")
    assert exc.value.code == "unknown_category"


def request(t: TicketToRoute, unit: str, reason: str) -> ReturnRequest:
    return ReturnRequest(t.ticket_id, unit, reason, "依据三定方案", NOW)


def test_auto_review_rules(small: tuple[synthcity.SynthCity, Directory, GridIndex]) -> None:
    city, directory, index = small
    code = city.cell_code(5, 5)
    t = ticket("300301", point=city.cell_centre(5, 5))
    mine = open_ticket(t, NOW, unit_code=code[:12])
    v = domain.auto_review(request(t, code[:12], "wrong_territory"), mine, directory, index, NOW)
    assert v is not None and (v.approved, v.reviewer) == (False, "auto:location_in_unit_area")
    elsewhere = city.cell_code(11, 11)[:12]
    other = open_ticket(t, NOW, unit_code=elsewhere)
    v = domain.auto_review(request(t, elsewhere, "wrong_territory"), other, directory, index, NOW)
    assert v is not None and (v.approved, v.reviewer) == (True, "auto:location_outside_unit_area")
    v = domain.auto_review(
        request(t, "330110-ZJJ", "not_our_duty"), open_ticket(t, NOW, unit_code="330110-ZJJ"), directory, index, NOW
    )
    assert v is not None and (v.approved, v.reviewer) == (True, "auto:directory_names_other_unit")
    v = domain.auto_review(request(t, code[:12], "not_our_duty"), mine, directory, index, NOW)
    assert v is None  # the 派单目录 itself names this unit: a person decides
    v = domain.auto_review(request(t, code[:12], "made_up"), mine, directory, index, NOW)
    assert v is not None and v.reviewer == "auto:unknown_reason" and not v.approved
    v = domain.auto_review(request(t, "330110-CGJ", "unclear_ownership"), mine, directory, index, NOW)
    assert v is not None and v.reviewer == "auto:not_current_unit"
    assert domain.auto_review(request(t, code[:12], "unclear_ownership"), mine, directory, index, NOW) is None


def test_reroute_excludes_returning_units_and_stops_after_max(
    small: tuple[synthcity.SynthCity, Directory, GridIndex],
) -> None:
    city, directory, index = small
    t = ticket("100101", point=city.cell_centre(1, 1))
    policy = ReturnPolicy(review_working_days=1, max_reroutes=2)
    d = domain.reroute(t.ticket_id, open_ticket(t, NOW), "330110-CGJ", directory, index, NOW, policy)
    assert isinstance(d.event, DispatchAssignedV1) and d.event.unit_code == "330110-SW"
    both = open_ticket(t, NOW, returned_by=("330110-CGJ",))
    d = domain.reroute(t.ticket_id, both, "330110-SW", directory, index, NOW, policy)
    assert isinstance(d.event, DispatchNeedsManualV1) and d.event.reason_code == "only_excluded_units"
    many = open_ticket(t, NOW, returned_by=("A", "B"))
    d = domain.reroute(t.ticket_id, many, "330110-SW", directory, index, NOW, policy)
    assert isinstance(d.event, DispatchNeedsManualV1) and d.event.reason_code == "too_many_returns"
    d = domain.reroute(t.ticket_id, None, "330110-SW", directory, index, NOW, policy)
    assert isinstance(d.event, DispatchNeedsManualV1) and d.event.reason_code == "reroute_unavailable"
    assert domain.timeout_verdict(policy).approved
    assert not domain.timeout_verdict(ReturnPolicy(1, timeout_approves=False)).approved


def test_duplicates_policy_in_the_bundle_is_checked() -> None:
    city = synthcity.generate(100, seed=3)
    cats = [c | {"duplicates": {"radius_m": 30, "window_h": 24}} for c in city.bundle["categories"]]
    bundle, report = load_bundle(city.bundle | {"categories": cats})
    assert report.ok and bundle.categories[0].duplicates == DuplicatePolicy(30.0, 24.0, None, True)
    bad = [c | {"duplicates": {"radius_m": -1}} for c in city.bundle["categories"]]
    _, report = load_bundle(city.bundle | {"categories": bad})
    assert "bad_category" in report.codes("error")
    off = [c | {"duplicates": False} for c in city.bundle["categories"]]
    bundle, _ = load_bundle(city.bundle | {"categories": off})
    assert not bundle.categories[0].duplicates.enabled
