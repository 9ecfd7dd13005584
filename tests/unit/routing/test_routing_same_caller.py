"""一事多报 "optionally the same caller and address": intake's keyed caller hash and the per-category
requirements, checked on the pure rule and on the directory bundle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gridline_contracts.intake import ReporterRef, TicketReceivedV1
from gridline_pii import Keyring, caller_hash, normalize_phone
from routing import domain, synthcity
from routing.directory import DuplicatePolicy, load_bundle
from routing.domain import OpenTicket, TicketToRoute

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
KEY = Keyring.from_spec(Keyring.generate_spec()).hmac_key()
ALICE = caller_hash(normalize_phone("138 0000 1111"), "330110", KEY)
BOB = caller_hash(normalize_phone("13900002222"), "330110", KEY)
SAME_CALLER = DuplicatePolicy(radius_m=100, window_h=72, same_address=True, same_caller=True)
SAME_ADDRESS = DuplicatePolicy(radius_m=100, window_h=72, same_address=True, require_same_address=True)


def ticket(
    caller: str | None = None, point: tuple[float, float] | None = (120.1, 30.2), address: str | None = None
) -> TicketToRoute:
    return TicketToRoute(uuid.uuid4(), "330110", "200102", location=point, address=address, caller_hash=caller)


def open_ticket(t: TicketToRoute, hours_ago: float) -> OpenTicket:
    return OpenTicket(t, f"NO-{t.ticket_id.hex[:4]}", NOW - timedelta(hours=hours_ago), "dispatched")


def test_caller_hash_is_keyed_per_tenant_and_hides_the_number() -> None:
    phone = normalize_phone("+86 138-0000-1111")
    assert caller_hash(phone, "330110", KEY) == ALICE  # normalised first: the same caller however written
    assert caller_hash(phone, "330106", KEY) != ALICE  # another tenant: unrelated hashes
    other_key = Keyring.from_spec(Keyring.generate_spec()).hmac_key()
    assert caller_hash(phone, "330110", other_key) != ALICE  # without intake's key it cannot be recomputed
    assert len(ALICE) == 64 and phone not in ALICE and ALICE != BOB


def test_ticket_received_carries_the_hash_into_routing() -> None:
    event = TicketReceivedV1(
        ticket_id=uuid.uuid4(),
        ticket_no="330110-1",
        channel="hotline",
        category_code="200102",
        description="路灯不亮",
        reported_at=NOW,
        received_at=NOW,
        reporter=ReporterRef(contact_token="v1.t1.x", masked_phone="138****1111", caller_hash=ALICE),
    )
    assert TicketToRoute.from_event(event, tenant="330110").caller_hash == ALICE
    older = TicketReceivedV1.model_validate(event.model_dump(mode="json", exclude={"reporter": {"caller_hash"}}))
    assert TicketToRoute.from_event(older, tenant="330110").caller_hash is None  # events from before the field


def test_same_caller_required_merges_only_the_same_caller() -> None:
    new = ticket(ALICE)
    by_bob = open_ticket(ticket(BOB, point=(120.1001, 30.2)), 1)
    by_alice = open_ticket(ticket(ALICE, point=(120.1005, 30.2)), 2)
    found = domain.find_duplicate(new, NOW, [by_bob, by_alice], SAME_CALLER, NOW)
    assert found is not None and found.parent is by_alice  # Bob's is nearer but another caller
    assert found.event.rule == "radius:100m/72h+caller" and "同一来电人" in found.trail[0]
    assert domain.find_duplicate(new, NOW, [by_bob], SAME_CALLER, NOW) is None
    # Without the requirement the nearest wins, whoever called.
    plain = DuplicatePolicy(radius_m=100, window_h=72, same_address=True)
    assert (found := domain.find_duplicate(new, NOW, [by_bob, by_alice], plain, NOW)) and found.parent is by_bob


def test_anonymous_reports_never_merge_when_the_caller_must_match() -> None:
    anonymous = ticket(None)
    assert domain.find_duplicate(anonymous, NOW, [open_ticket(ticket(None), 1)], SAME_CALLER, NOW) is None
    assert domain.find_duplicate(ticket(ALICE), NOW, [open_ticket(ticket(None), 1)], SAME_CALLER, NOW) is None


def test_same_address_required_on_top_of_the_radius() -> None:
    new = ticket(point=(120.1, 30.2), address="文源路 35 號")
    other_door = open_ticket(ticket(point=(120.1001, 30.2), address="文源路37号"), 1)
    same_door = open_ticket(ticket(point=(120.1006, 30.2), address="文源路35号"), 2)
    no_address = open_ticket(ticket(point=(120.1, 30.2)), 1)
    found = domain.find_duplicate(new, NOW, [other_door, same_door, no_address], SAME_ADDRESS, NOW)
    assert found is not None and found.parent is same_door and found.event.rule == "radius:100m/72h+address"
    assert domain.find_duplicate(new, NOW, [other_door, no_address], SAME_ADDRESS, NOW) is None
    # A new report without an address cannot satisfy the requirement.
    assert domain.find_duplicate(ticket(point=(120.1, 30.2)), NOW, [same_door], SAME_ADDRESS, NOW) is None


def test_both_requirements_together() -> None:
    both = DuplicatePolicy(100, 72, True, same_caller=True, require_same_address=True)
    new = ticket(ALICE, address="文源路35号")
    wrong_caller = open_ticket(ticket(BOB, address="文源路35号"), 1)
    wrong_door = open_ticket(ticket(ALICE, address="文源路36号"), 1)
    right = open_ticket(ticket(ALICE, point=(120.1004, 30.2), address="文源路35号"), 3)
    found = domain.find_duplicate(new, NOW, [wrong_caller, wrong_door, right], both, NOW)
    assert found is not None and found.parent is right and found.event.rule == "radius:100m/72h+caller+address"


def test_per_category_requirements_in_the_bundle_and_defaults() -> None:
    city = synthcity.generate(100, seed=3)
    cats = list(city.bundle["categories"])
    cats[0] = cats[0] | {"duplicates": {"same_caller": True, "require_same_address": True}}
    cats[1] = cats[1] | {"duplicates": {"same_caller": False}}
    bundle, report = load_bundle(city.bundle | {"categories": cats})
    assert report.ok
    by_code = {c.code: c for c in bundle.categories}
    defaults = DuplicatePolicy(100, 72, True, same_caller=True, require_same_address=False)
    first = by_code[cats[0]["code"]].duplicates.resolve(defaults)
    assert (first.same_caller, first.require_same_address, first.radius_m) == (True, True, 100)
    second = by_code[cats[1]["code"]].duplicates.resolve(defaults)
    assert (second.same_caller, second.require_same_address) == (False, False)  # the category wins
    bad = [c | {"duplicates": {"same_caller": "yes"}} for c in city.bundle["categories"]]
    _, report = load_bundle(city.bundle | {"categories": bad})
    assert any(i.code == "bad_category" and "same_caller" in i.message for i in report.issues)
