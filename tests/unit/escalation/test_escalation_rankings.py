"""Rates, composite score and 红黑榜 as pure functions."""

from __future__ import annotations

import pytest

from escalation.rankings import UnitCounts, rates, red_black, score, score_units, validate_weights


def test_a_rate_without_denominator_is_none_not_zero() -> None:
    r = rates(UnitCounts("XH-CG-01"))
    assert all(v is None for v in r.values())
    assert score(r) is None


def test_rates_follow_the_documented_formulas() -> None:
    c = UnitCounts(
        "XH-CG-01",
        sign_armed=10,
        sign_on_time=9,
        sign_responded=10,
        handle_armed=10,
        replied=8,
        replied_on_time=6,
        returned=1,
        redone=2,
        extended=3,
        callbacks_reached=8,
        satisfied=6,
        resolved_known=8,
        resolved=4,
    )
    r = rates(c)
    assert r == {
        "on_time_sign": 0.9,
        "response": 1.0,
        "on_time_close": 0.75,
        "resolution": 0.5,
        "satisfaction": 0.75,
        "return_rate": 0.1,
        "redo_rate": 0.25,
        "extension_rate": 0.3,
    }
    # Lower 回退率/重办率 are better: they enter as 1 - rate.
    assert score(r, {"return_rate": 1.0}) == 90.0
    assert score(r, {"on_time_close": 1.0, "satisfaction": 1.0}) == 75.0


def test_missing_rates_drop_out_of_the_weights() -> None:
    assert score({"on_time_close": 0.5, "satisfaction": None}, {"on_time_close": 1, "satisfaction": 3}) == 50.0


def test_red_and_black_lists_never_share_a_unit() -> None:
    counts = [
        UnitCounts(f"U{i}", replied=10, replied_on_time=i, callbacks_reached=10, satisfied=i) for i in range(1, 4)
    ]
    scored = score_units([*counts, UnitCounts("U-NONE")])
    assert [u.unit_code for u in scored] == ["U3", "U2", "U1", "U-NONE"]
    red, black = red_black(scored, 2)
    assert [u.unit_code for u in red] == ["U3", "U2"] and [u.unit_code for u in black] == ["U1"]


def test_weights_are_validated() -> None:
    with pytest.raises(ValueError):
        validate_weights({"speed": 1.0})
    with pytest.raises(ValueError):
        validate_weights({"satisfaction": 0.0})


def test_rate_gauges_cover_only_the_red_and_black_lists() -> None:
    """However many units a tenant has, the gauges carry at most 2k units (bounded label set)."""
    from escalation.rankings import UnitCounts, gauge_rows, score_units

    counts = [UnitCounts(f"U{i:03d}", sign_armed=10, sign_on_time=i % 11, sign_responded=10) for i in range(200)]
    rows = gauge_rows(score_units(counts), 5)
    units = {u for u, _, _ in rows}
    assert len(units) == 10
    assert {r for _, r, _ in rows} == {"on_time_sign", "response", "score"}
    assert all(0 <= v <= 1 for _, r, v in rows if r != "score")
    assert gauge_rows(score_units([UnitCounts("X")]), 5) == []  # no data, no series
