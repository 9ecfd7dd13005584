"""The rates per unit and period, a weighted composite score and the 红黑榜. Pure: counts in, rows out.

Formulas (also in docs/escalation.md); a rate whose denominator is 0 is None, never 0 or 100 %:

- 按时签收率 on_time_sign = sign clocks stopped by 签收 by their deadline / sign clocks armed
- 响应率 response = sign clocks stopped by 签收 or a reply (at any time) / sign clocks armed
- 按期办结率 on_time_close = handling clocks stopped by the reply by their deadline / handling clocks stopped by a reply
- 解决率 resolution = callbacks with resolved = true / callbacks that say whether it was resolved
- 满意率 satisfaction = (满意 + 基本满意) / callbacks that reached the caller
- 回退率 return_rate = handling clocks stopped by an approved 退单 / handling clocks armed
- 重办率 redo_rate = handling rounds re-armed for the same unit (退回重办 or 重办) / handling clocks stopped by a reply
- 延期率 extension_rate = handling clocks armed with at least one approved 延期 / handling clocks armed
- 超期未结数 overdue_open = handling clocks still open whose deadline has passed (now, not per period)
- mean handling time = mean(stopped − started) of handling clocks stopped by a reply, in hours

The composite score is the weighted mean of the available rates (a lower 回退率/重办率 is better,
so they enter as 1 − rate), × 100; weights of missing rates are left out and the rest rescaled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "on_time_sign": 0.15,
    "on_time_close": 0.25,
    "resolution": 0.2,
    "satisfaction": 0.25,
    "return_rate": 0.05,
    "redo_rate": 0.1,
}
_INVERTED = {"return_rate", "redo_rate"}
RATE_NAMES = (
    "on_time_sign",
    "response",
    "on_time_close",
    "resolution",
    "satisfaction",
    "return_rate",
    "redo_rate",
    "extension_rate",
)


@dataclass(frozen=True)
class UnitCounts:
    unit_code: str
    sign_armed: int = 0
    sign_on_time: int = 0
    sign_responded: int = 0
    handle_armed: int = 0
    replied: int = 0
    replied_on_time: int = 0
    returned: int = 0
    redone: int = 0
    extended: int = 0
    overdue_open: int = 0
    handling_hours_sum: float = 0.0
    callbacks_reached: int = 0
    satisfied: int = 0
    resolved_known: int = 0
    resolved: int = 0


@dataclass(frozen=True)
class UnitScore:
    unit_code: str
    rates: Mapping[str, float | None]
    overdue_open: int
    mean_handling_hours: float | None
    score: float | None


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def rates(c: UnitCounts) -> dict[str, float | None]:
    return {
        "on_time_sign": _rate(c.sign_on_time, c.sign_armed),
        "response": _rate(c.sign_responded, c.sign_armed),
        "on_time_close": _rate(c.replied_on_time, c.replied),
        "resolution": _rate(c.resolved, c.resolved_known),
        "satisfaction": _rate(c.satisfied, c.callbacks_reached),
        "return_rate": _rate(c.returned, c.handle_armed),
        "redo_rate": _rate(c.redone, c.replied),
        "extension_rate": _rate(c.extended, c.handle_armed),
    }


def validate_weights(weights: Mapping[str, float]) -> None:
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("weights must be >= 0 and not all zero")


def score(r: Mapping[str, float | None], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float | None:
    total = used = 0.0
    for name, w in weights.items():
        value = r.get(name)
        if value is None or w == 0:
            continue
        total += w * (1 - value if name in _INVERTED else value)
        used += w
    return round(100 * total / used, 2) if used else None


def score_units(counts: Sequence[UnitCounts], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> list[UnitScore]:
    """Every unit with its rates and score, best score first (units without a score last, by code)."""
    out = []
    for c in counts:
        r = rates(c)
        out.append(
            UnitScore(
                unit_code=c.unit_code,
                rates=r,
                overdue_open=c.overdue_open,
                mean_handling_hours=round(c.handling_hours_sum / c.replied, 2) if c.replied else None,
                score=score(r, weights),
            )
        )
    return sorted(out, key=lambda u: (u.score is None, -(u.score or 0.0), u.unit_code))


def red_black(scored: Sequence[UnitScore], k: int) -> tuple[list[UnitScore], list[UnitScore]]:
    """红榜 (top k) and 黑榜 (bottom k, worst first) among units with a score; a unit is on one list at most."""
    ranked = [u for u in scored if u.score is not None]
    red = ranked[:k]
    black = [u for u in reversed(ranked[len(red) :])][:k]
    return red, black


def period_bounds(period: str, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` of the day, Monday-to-Sunday week or calendar month holding ``day``, in local time."""
    if period == "day":
        first, last = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(first, time(0), tzinfo=tz), datetime.combine(last, time(0), tzinfo=tz)


def gauge_rows(scored: Sequence[UnitScore], k: int) -> list[tuple[str, str, float]]:
    """``(unit, rate, value)`` for the Prometheus gauges: only the units on the 红黑榜 (at most 2k),
    each rate that has a value plus ``score``, so the label set stays bounded however many units a
    tenant has (the full table is the API and CSV)."""
    red, black = red_black(scored, k)
    out: list[tuple[str, str, float]] = []
    for u in [*red, *black]:
        out += [(u.unit_code, name, v) for name in RATE_NAMES if (v := u.rates[name]) is not None]
        if u.score is not None:
            out.append((u.unit_code, "score", u.score))
    return out
