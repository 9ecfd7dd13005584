"""Working days for the 退单 review window: 工作日 with 调休, from chinese_calendar plus the tenant's
overrides (pure; no I/O).

Which days are working days (first answer wins), the same order as escalation's calendar:

1. the tenant's ``overrides`` (date → working day?), from the directory bundle's ``calendar`` block:
   where the State Council notice for a year the library does not know yet is entered, and local
   holidays or corrections;
2. for a year in ``override_years`` (its notice entered in full), Monday–Friday;
3. ``chinese_calendar`` (holidays, 调休 days off, 补班 working days; 2004–2026 in the pinned version);
4. otherwise :class:`CalendarGap` — never a silent weekends-only guess.

The review window of N 工作日 starts the day after the request (the day of the request never counts,
as 12345 limits count "from the next day") and ends at close of business of the Nth working day.
Routing keeps its own copy of this small rule because services never import each other; the data a
tenant enters lives in its directory bundle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

DEFAULT_CLOSE = time(17, 30)
_MAX_SCAN_DAYS = 3 * 366


class CalendarGap(LookupError):
    """No working-day data for ``day``: chinese_calendar does not cover its year and no override does."""

    code = "calendar_gap"

    def __init__(self, day: date) -> None:
        self.day = day
        self.message = (
            f"{day.isoformat()} 缺少工作日历数据：chinese_calendar 未收录 {day.year} 年，目录中也没有该日的覆盖；"
            f"请在目录 calendar.overrides 中录入 {day.year} 年放假安排并把 {day.year} 列入 calendar.override_years"
        )
        super().__init__(self.message)


@dataclass(frozen=True)
class WorkingDays:
    tz: str = "Asia/Shanghai"
    overrides: Mapping[date, bool] = field(default_factory=dict)
    override_years: Collection[int] = frozenset()
    close_of_business: time = DEFAULT_CLOSE

    def is_workday(self, d: date) -> bool:
        override = self.overrides.get(d)
        if override is not None:
            return override
        if d.year in self.override_years:
            return d.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            raise CalendarGap(d) from None

    def review_due(self, start: datetime, working_days: int) -> datetime:
        """Close of business of the ``working_days``-th working day after ``start``'s local day."""
        if working_days < 1:
            raise ValueError(f"working_days must be at least 1, got {working_days}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        zone = ZoneInfo(self.tz)
        d, n = start.astimezone(zone).date(), working_days
        for _ in range(_MAX_SCAN_DAYS):
            d += timedelta(days=1)
            if self.is_workday(d):
                n -= 1
                if n == 0:
                    return datetime.combine(d, self.close_of_business, tzinfo=zone)
        raise CalendarGap(d)  # years of rest days: the overrides are wrong
