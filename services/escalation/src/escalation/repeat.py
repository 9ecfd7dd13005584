"""The repeat-point list (重复投诉点位): the same place with at least N reports in 30 days. Pure.

"The same place" (the issue does not define it; decided here, see docs/escalation.md):

- a report with a location falls in a cell of 0.001° × 0.001° (WGS-84, ≈ 110 m × 95 m at 30° N):
  key ``loc:<lat>,<lon>`` with both rounded to 3 decimals. Reports within a street block share it;
  two sides of a cell boundary do not (a known limit of cells; the list is a prompt to look, not a
  verdict).
- a report without a location but with an address: key ``addr:<area>:<normalised address>`` —
  NFKC, without whitespace or punctuation, lower case — within the same administrative area code.
- neither: the report has no place and is not counted.

The grid (网格) is not part of the key (reports arrive before routing picks a grid); the list shows
the grid of the newest dispatched report of each place.
"""

from __future__ import annotations

import unicodedata

from gridline_contracts.intake import GeoPoint

CELL_DECIMALS = 3


def normalise_address(address: str) -> str:
    text = unicodedata.normalize("NFKC", address).lower()
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith(("P", "S"))))


def place_key(location: GeoPoint | None, address: str | None, area_code: str | None) -> str | None:
    """The key that makes two reports "the same place", or None when a report has no place."""
    if location is not None:
        lat, lon = round(location.lat, CELL_DECIMALS), round(location.lon, CELL_DECIMALS)
        return f"loc:{lat:.{CELL_DECIMALS}f},{lon:.{CELL_DECIMALS}f}"
    if address:
        norm = normalise_address(address)
        if norm:
            return f"addr:{area_code or '-'}:{norm}"
    return None
