"""intake's request windows on the shared working calendar (:mod:`gridline_calendar`): 退单 within N
working days of dispatch, 延期 requested at least N working days before the deadline (domain §1.5: S8
"回退 within 2 working days"), and the tenants' overrides from ``CALENDAR_OVERRIDES`` (the same entries
an operator makes in escalation's calendar API). A date nobody has data for is a
:class:`gridline_calendar.CalendarGapError`, which the API answers as 503 ``calendar_gap``.

What intake adds to the shared calendar: its windows close at the end (24:00, local time) of the Nth
working day, not at close of business; the day the window opens is not counted (民法典 §201).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from gridline_calendar import CalendarGapError, WorkCalendar

_MAX_SCAN_DAYS = 3 * 366  # a window longer than this means the data is wrong, not that we should loop


class WorkingDays(WorkCalendar):
    """One tenant's calendar with intake's request-window rule."""

    def local_date(self, at: datetime) -> date:
        if at.tzinfo is None:
            raise ValueError("naive datetime")
        return at.astimezone(self.tz).date()

    def end_of(self, d: date) -> datetime:
        """24:00 local time of ``d``, as an aware instant."""
        return datetime.combine(d + timedelta(days=1), time(0), self.tz)

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
    """``CALENDAR_OVERRIDES``: ``{tenant: {"days": {"2027-01-01": false, …}, "complete_years": [2027]}}``.

    ``complete_years`` (a year whose holiday notice is entered in full: Monday–Friday elsewhere) is the
    shared calendar's ``override_years``."""
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
        out[str(tenant)] = WorkingDays(overrides=parsed, override_years=frozenset(int(y) for y in years))
    return out
