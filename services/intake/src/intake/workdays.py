"""Working days (工作日) for intake's request windows: 退单 within N working days of dispatch, 延期
requested at least N working days before the deadline (domain §1.5: S8 "回退 within 2 working days").

Why a small calendar of intake's own: deadlines are escalation's (its ``WorkCalendar`` also does
working hours and per-tenant windows, kept in escalation's database), and services do not import each
other's code or read each other's schemas. Intake only needs "is this date a working day", so this
is the same rule on the same data — a tenant's overrides (``CALENDAR_OVERRIDES``, the same entries an
operator makes in escalation's calendar API), then ``chinese_calendar`` (statutory holidays, 调休 and
补班) — in one pure function, and never a guess: a date nobody has data for is a
:class:`CalendarGapError`, which the API answers as 503 ``calendar_gap``.

Counting follows escalation and 民法典 §201: the day the window opens is not counted; the window
closes at the end (24:00, local time) of the Nth working day after it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar

TZ = "Asia/Shanghai"
_MAX_SCAN_DAYS = 3 * 366  # a window longer than this means the data is wrong, not that we should loop


class CalendarGapError(LookupError):
    """No working-day data for ``day``: no tenant override, and chinese_calendar does not cover its year."""

    code = "calendar_gap"

    def __init__(self, day: date) -> None:
        super().__init__(f"no working-day data for {day.isoformat()}: enter {day.year}'s holiday notice as overrides")
        self.day = day


@dataclass(frozen=True)
class WorkingDays:
    """One tenant's working days: overrides first; a year in ``complete_years`` (its holiday notice
    entered in full as overrides) is Monday–Friday elsewhere; then chinese_calendar; else a gap."""

    overrides: Mapping[date, bool] = field(default_factory=lambda: MappingProxyType({}))
    complete_years: Collection[int] = ()
    tz: str = TZ

    def is_workday(self, d: date) -> bool:
        if d in self.overrides:
            return self.overrides[d]
        if d.year in self.complete_years:
            return d.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            raise CalendarGapError(d) from None

    def local_date(self, at: datetime) -> date:
        if at.tzinfo is None:
            raise ValueError("naive datetime")
        return at.astimezone(ZoneInfo(self.tz)).date()

    def end_of(self, d: date) -> datetime:
        """24:00 local time of ``d``, as an aware instant."""
        return datetime.combine(d + timedelta(days=1), time(0), ZoneInfo(self.tz))

    def window_closed(self, opened: datetime, working_days: int, now: datetime) -> date | None:
        """The day a window of ``working_days`` opened at ``opened`` closed (at its end), if that is
        before ``now``; None while it is still open.

        Only days up to today are looked at: whether a window is still open never depends on data for
        future days, so a year's missing holiday notice matters only once that year has begun.
        """
        day, today, left = self.local_date(opened), self.local_date(now), working_days
        for _ in range(_MAX_SCAN_DAYS):
            day += timedelta(days=1)
            if day >= today:
                return None  # the Nth working day is today or later: the window is open until its end
            if self.is_workday(day):
                left -= 1
                if left <= 0:
                    return day
        raise CalendarGapError(day)

    def nth_workday_before(self, d: date, n: int) -> date:
        """The Nth working day strictly before ``d`` (``d`` itself when n == 0)."""
        for _ in range(_MAX_SCAN_DAYS):
            if n <= 0:
                return d
            d -= timedelta(days=1)
            if self.is_workday(d):
                n -= 1
        raise CalendarGapError(d)


def parse_overrides(raw: Mapping[str, object]) -> dict[str, WorkingDays]:
    """``CALENDAR_OVERRIDES``: ``{tenant: {"days": {"2027-01-01": false, …}, "complete_years": [2027]}}``."""
    out: dict[str, WorkingDays] = {}
    for tenant, spec in raw.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"calendar overrides for {tenant} must be an object")
        days = spec.get("days", {})
        years = spec.get("complete_years", [])
        if not isinstance(days, Mapping) or not isinstance(years, list):
            raise ValueError(f"calendar overrides for {tenant}: days is an object, complete_years a list")
        parsed: dict[date, bool] = {}
        for k, v in days.items():
            if not isinstance(v, bool):
                raise ValueError(f"calendar override {tenant} {k}: true (working day) or false (day off)")
            parsed[date.fromisoformat(str(k))] = v
        out[str(tenant)] = WorkingDays(MappingProxyType(parsed), frozenset(int(y) for y in years))
    return out
