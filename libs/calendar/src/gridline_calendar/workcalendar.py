"""The working calendar every Gridline service counts on: 工作日 with 调休, and 工作时 windows. Pure: the
caller passes in a tenant's overrides and windows (each service keeps them its own way: escalation in
its database, routing in the directory bundle, intake in ``CALENDAR_OVERRIDES``).

Which days are working days, in this order (first answer wins):

1. the tenant's override table (``overrides``: date → is it a working day), which is where the State
   Council holiday notice for a year the library does not know yet is entered, and where a tenant
   records a local holiday or a correction;
2. for a year listed in ``override_years`` (its notice has been entered in full), any date not in the
   table is a working day exactly when it is Monday–Friday;
3. ``chinese_calendar`` (statutory holidays, 调休 days off and 补班 make-up working days; the pinned
   1.11.0 covers 2004–2026 and raises for other years, notify-providers-and-escalation.md §6.1);
4. otherwise :class:`CalendarGapError`, unless the calendar was built with
   ``fallback="weekends_only"``: then Monday–Friday, and :meth:`WorkCalendar.is_provisional` tells
   the caller its result rests on a guess (reference §6.3: never a silent guess).

Counting N 工作日 (``add_working_days``): the day the clock starts is not counted; the deadline is the
close of business of the Nth working day after it. Sources: the 12345 bureau rule that counts limits
"from the day after receipt" (收到转办件工单的次日起, domain §1.2 and §1.5, S12) and the general rule of
Chinese law for periods (民法典 §201: 开始的当日不计入, 自下一日开始计算; §203: the last day ends at 24:00,
or at the close of business where there are business hours) [K]. Close of business is the end of the
last working-hour window of that day (17:30 by default). Some rules count the day of receipt
(domain §1.5: "make start on same day / next day configurable"): ``from_next_day=False`` counts the
start day as day 1 when it is a working day and the clock starts before its close of business.

All arithmetic is done on absolute instants (UTC), so results are right in any zone, DST included;
results are returned in the calendar's zone (Asia/Shanghai unless told). Naive datetimes are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

Fallback = Literal["error", "weekends_only"]
WorkingHours = tuple[tuple[time, time], ...]

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_WORKING_HOURS: WorkingHours = ((time(9, 0), time(12, 0)), (time(13, 30), time(17, 30)))

# Enough for any limit we know (15 工作日 plus the longest holiday); a longer scan means the data is wrong.
_MAX_SCAN_DAYS = 3 * 366
_ZERO = timedelta(0)


class CalendarGapError(LookupError):
    """There is no working-day data for ``day``: no override, and chinese_calendar does not cover its year."""

    code = "calendar_gap"

    def __init__(self, day: date) -> None:
        super().__init__(
            f"{day.isoformat()} 缺少工作日历数据: chinese_calendar has no data for {day.year} and no override "
            f"covers this date; enter the State Council holiday notice for {day.year} into the calendar "
            "overrides (and list the year in override_years)"
        )
        self.day = day


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


class WorkCalendar:
    """One tenant's working calendar. Immutable after construction; lookups are cached."""

    def __init__(
        self,
        tz: str = DEFAULT_TZ,
        overrides: Mapping[date, bool] | None = None,
        working_hours: Sequence[tuple[time, time]] = DEFAULT_WORKING_HOURS,
        *,
        override_years: Collection[int] = (),
        fallback: Fallback = "error",
    ) -> None:
        if fallback not in ("error", "weekends_only"):
            raise ValueError(f"fallback must be 'error' or 'weekends_only', got {fallback!r}")
        self._tz = ZoneInfo(tz)
        self._overrides: Mapping[date, bool] = MappingProxyType(dict(overrides or {}))
        self._override_years = frozenset(override_years)
        self._fallback: Fallback = fallback
        self._hours = _validate_hours(working_hours)
        self._cache: dict[date, tuple[bool, bool]] = {}  # day -> (is_workday, known)

    def _key(self) -> tuple[object, ...]:
        return (self._tz.key, self._overrides, self._override_years, self._hours, self._fallback)

    def __eq__(self, other: object) -> bool:
        # Value semantics: a service can tell whether a reloaded tenant configuration changed its calendar.
        return isinstance(other, WorkCalendar) and type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self._tz.key, frozenset(self._overrides.items()), self._override_years, self._hours))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._tz.key!r}, {len(self._overrides)} overrides, {self._hours!r}, "
            f"override_years={sorted(self._override_years)!r}, fallback={self._fallback!r})"
        )

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    @property
    def working_hours(self) -> WorkingHours:
        return self._hours

    # -- days -----------------------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        """Whether ``d`` (a local date) is a working day; raises CalendarGapError if nobody knows."""
        return self._lookup(self._as_date(d))[0]

    def is_known(self, d: date) -> bool:
        """Whether ``d`` is answered by real data (override or library), not by the fallback rule."""
        try:
            return self._lookup(self._as_date(d))[1]
        except CalendarGapError:
            return False

    def is_provisional(self, first: date, last: date) -> bool:
        """Whether any day in ``[first, last]`` was answered by the fallback rule instead of data."""
        d, end = self._as_date(first), self._as_date(last)
        while d <= end:
            if not self.is_known(d):
                return True
            d += timedelta(days=1)
        return False

    def _as_date(self, d: date) -> date:
        if isinstance(d, datetime):
            _require_aware(d, "day")
            return d.astimezone(self._tz).date()
        return d

    def _lookup(self, d: date) -> tuple[bool, bool]:
        hit = self._cache.get(d)
        if hit is None:
            hit = self._resolve(d)
            self._cache[d] = hit
        return hit

    def _resolve(self, d: date) -> tuple[bool, bool]:
        override = self._overrides.get(d)
        if override is not None:
            return bool(override), True
        if d.year in self._override_years:
            return d.weekday() < 5, True
        try:
            return bool(chinese_calendar.is_workday(d)), True
        except NotImplementedError:
            if self._fallback == "weekends_only":
                return d.weekday() < 5, False
            raise CalendarGapError(d) from None

    def _nth_workday(self, d: date, n: int, *, forward: bool) -> date:
        """The Nth working day strictly after (or before) ``d``; n >= 1."""
        step = timedelta(days=1 if forward else -1)
        for _ in range(_MAX_SCAN_DAYS):
            d += step
            if self.is_workday(d):
                n -= 1
                if n == 0:
                    return d
        raise CalendarGapError(d)  # years without a working day: the overrides are wrong, so no answer

    # -- windows --------------------------------------------------------------------------------

    def working_windows(self, d: date) -> list[tuple[datetime, datetime]]:
        """The working-hour windows of local date ``d`` as aware datetimes; empty on a rest day."""
        if not self.is_workday(d):
            return []
        return [
            (datetime.combine(d, start, tzinfo=self._tz), datetime.combine(d, end, tzinfo=self._tz))
            for start, end in self._hours
        ]

    def close_of_business(self, d: date) -> datetime:
        """End of the last working window of ``d`` (whether or not ``d`` is a working day)."""
        return datetime.combine(d, self._hours[-1][1], tzinfo=self._tz)

    def _utc_windows(self, d: date) -> list[tuple[datetime, datetime]]:
        return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in self.working_windows(d)]

    def _local(self, value: datetime, name: str) -> datetime:
        _require_aware(value, name)
        return value.astimezone(self._tz)

    # -- arithmetic -----------------------------------------------------------------------------

    def add_working_days(self, start: datetime, n: int, *, from_next_day: bool = True) -> datetime:
        """The deadline of an N-工作日 limit started at ``start``: close of business of the Nth working day.

        With ``from_next_day`` (the default, see the module docstring) the start day never counts, so a
        ticket dispatched on Friday evening, on Saturday or on a holiday is due at the close of the Nth
        working day after that day. With ``from_next_day=False`` the start day is day 1 if it is a
        working day and ``start`` is before its close of business.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1 working day, got {n}")
        local = self._local(start, "start")
        d = local.date()
        if not from_next_day and self.is_workday(d) and local < self.close_of_business(d):
            return self.close_of_business(d if n == 1 else self._nth_workday(d, n - 1, forward=True))
        return self.close_of_business(self._nth_workday(d, n, forward=True))

    def subtract_working_days(self, end: datetime, n: int) -> datetime:
        """The same local time of day on the Nth working day before ``end``'s day ("1 工作日 before due")."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        local = self._local(end, "end")
        if n == 0:
            return local
        d = self._nth_workday(local.date(), n, forward=False)
        return datetime.combine(d, local.time(), tzinfo=self._tz)

    def add_working_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """``start`` moved by ``hours`` of working time (negative: backwards).

        Only time inside the working windows of working days counts, so a start in the evening, on a
        weekend or on a holiday begins counting at the next window. A result that lands exactly on the
        end of a window stays there (17:30, not 09:00 the next working day).
        """
        span = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        local = self._local(start, "start")
        if span == _ZERO:
            return local
        if span > _ZERO:
            return self._forward(local, span)
        return self._backward(local, -span)

    def _forward(self, local: datetime, remaining: timedelta) -> datetime:
        t = local.astimezone(UTC)
        d = local.date()
        for _ in range(_MAX_SCAN_DAYS):
            for ws, we in self._utc_windows(d):
                if we <= t:
                    continue
                s = max(ws, t)
                available = we - s
                if remaining <= available:
                    return (s + remaining).astimezone(self._tz)
                remaining -= available
            d += timedelta(days=1)
        raise RuntimeError(f"working hours did not fit within {_MAX_SCAN_DAYS} days: check the overrides")

    def _backward(self, local: datetime, remaining: timedelta) -> datetime:
        t = local.astimezone(UTC)
        d = local.date()
        for _ in range(_MAX_SCAN_DAYS):
            for ws, we in reversed(self._utc_windows(d)):
                if ws >= t:
                    continue
                e = min(we, t)
                available = e - ws
                if remaining <= available:
                    return (e - remaining).astimezone(self._tz)
                remaining -= available
            d -= timedelta(days=1)
        raise RuntimeError(f"working hours did not fit within {_MAX_SCAN_DAYS} days: check the overrides")

    def add_natural_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """``start`` plus elapsed (7×24) time; used for emergency limits (domain §1.5)."""
        span = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        local = self._local(start, "start")
        return (local.astimezone(UTC) + span).astimezone(self._tz)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time inside the windows of working days between ``a`` and ``b`` (negative if b < a)."""
        la, lb = self._local(a, "a"), self._local(b, "b")
        if lb < la:
            return -self.working_time_between(lb, la)
        ua, ub = la.astimezone(UTC), lb.astimezone(UTC)
        total = _ZERO
        d = la.date()
        while d <= lb.date():
            for ws, we in self._utc_windows(d):
                s, e = max(ws, ua), min(we, ub)
                if e > s:
                    total += e - s
            d += timedelta(days=1)
        return total


def _validate_hours(hours: Sequence[tuple[time, time]]) -> WorkingHours:
    windows = tuple((s, e) for s, e in hours)
    if not windows:
        raise ValueError("working_hours needs at least one window")
    previous_end: time | None = None
    for s, e in windows:
        if s.tzinfo is not None or e.tzinfo is not None:
            raise ValueError("working-hour windows are local wall times: give them without tzinfo")
        if not s < e:
            raise ValueError(f"working-hour window {s}–{e} is empty or reversed")
        if previous_end is not None and s < previous_end:
            raise ValueError(f"working-hour window {s}–{e} overlaps or precedes the previous one")
        previous_end = e
    return windows
