"""What makes two reports "the same place" for the repeat-point list."""

from __future__ import annotations

from escalation.repeat import normalise_address, place_key
from gridline_contracts.intake import GeoPoint


def test_a_location_falls_in_a_cell_of_a_thousandth_of_a_degree() -> None:
    a = place_key(GeoPoint(lon=120.12341, lat=30.25912), "ignored when there is a point", "330106")
    b = place_key(GeoPoint(lon=120.12349, lat=30.25938), None, None)
    c = place_key(GeoPoint(lon=120.12451, lat=30.25912), None, None)
    assert a == b == "loc:30.259,120.123" and c == "loc:30.259,120.125"


def test_addresses_match_however_they_are_spaced_or_punctuated_within_one_area() -> None:
    assert normalise_address("文三路 478 号（华星时代广场）") == normalise_address("文三路478号华星时代广场")
    assert normalise_address("Ｗｅｎｓａｎ Ｒｏａｄ　478") == "wensanroad478"  # full-width forms folded
    a = place_key(None, "文三路 478 号", "330106")
    assert a == place_key(None, "文三路478号", "330106") != place_key(None, "文三路478号", "330108")


def test_a_report_without_a_place_is_not_counted() -> None:
    assert place_key(None, None, "330106") is None
    assert place_key(None, " ，。 ", "330106") is None
