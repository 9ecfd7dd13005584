"""The shared WorkCalendar (intake, routing and escalation count on it): 工作日 with 调休, the override
table, the 2027 gap, year boundaries, and 工作时 windows. Each service's own additions are tested with
the service (intake's request windows and CALENDAR_OVERRIDES, routing's bundle block).

Real 2026 dates are from chinese_calendar 1.11.0 (State Council notice for 2026): National Day
10-01..10-07 off with make-up working days Sun 09-20 and Sat 10-10; Spring Festival 02-15..02-23 off
with make-up Saturdays 02-14 and 02-28.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridline_calendar import DEFAULT_WORKING_HOURS, CalendarGapError, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


CAL = WorkCalendar()

# A 2027 notice as a tenant would enter it. Hypothetical values (the real notice is not out on
# 2026-11-22): 元旦 Fri 01-01 off; Spring Festival 02-06..02-12 off, make-up Sat 02-13 … only the
# shape matters here.
NOTICE_2027 = {
    date(2027, 1, 1): False,
    **{date(2027, 2, d): False for d in range(6, 13)},
    date(2027, 2, 13): True,
}


class TestWorkdays:
    def test_national_day_2026_is_off_and_its_make_up_days_are_working_days(self) -> None:
        assert [CAL.is_workday(date(2026, 10, d)) for d in range(1, 9)] == [False] * 7 + [True]
        assert CAL.is_workday(date(2026, 9, 20))  # Sunday 补班
        assert CAL.is_workday(date(2026, 10, 10))  # Saturday 补班
        assert not CAL.is_workday(date(2026, 10, 11))  # an ordinary Sunday

    def test_spring_festival_2026(self) -> None:
        assert not any(CAL.is_workday(date(2026, 2, d)) for d in range(15, 24))
        assert CAL.is_workday(date(2026, 2, 14))  # Saturday 补班
        assert CAL.is_workday(date(2026, 2, 28))  # Saturday 补班
        assert CAL.is_workday(date(2026, 2, 24))

    def test_override_wins_over_the_library(self) -> None:
        cal = WorkCalendar(overrides={date(2026, 11, 23): False, date(2026, 11, 22): True})
        assert not cal.is_workday(date(2026, 11, 23))  # a local holiday on a Monday
        assert cal.is_workday(date(2026, 11, 22))  # a local make-up Sunday
        # …and counting follows them: Friday + 1 is the make-up Sunday, + 2 skips the local holiday.
        assert cal.add_working_days(at(2026, 11, 20, 10), 1) == at(2026, 11, 22, 17, 30)
        assert cal.add_working_days(at(2026, 11, 20, 10), 2) == at(2026, 11, 24, 17, 30)

    def test_2027_without_data_is_a_clear_error(self) -> None:
        with pytest.raises(CalendarGapError) as err:
            CAL.is_workday(date(2027, 1, 4))
        assert err.value.day == date(2027, 1, 4)
        assert err.value.code == "calendar_gap"
        assert "2027" in str(err.value)

    def test_2027_dates_in_the_override_table_are_answered_but_others_still_raise(self) -> None:
        cal = WorkCalendar(overrides=NOTICE_2027)
        assert not cal.is_workday(date(2027, 1, 1))
        assert cal.is_workday(date(2027, 2, 13))
        with pytest.raises(CalendarGapError):
            cal.is_workday(date(2027, 1, 4))

    def test_a_year_whose_notice_is_entered_follows_monday_to_friday_elsewhere(self) -> None:
        cal = WorkCalendar(overrides=NOTICE_2027, override_years={2027})
        assert cal.is_workday(date(2027, 1, 4))  # Monday
        assert not cal.is_workday(date(2027, 1, 9))  # Saturday
        assert not cal.is_workday(date(2027, 2, 8))  # Monday in the (hypothetical) Spring Festival
        assert cal.is_workday(date(2027, 2, 13))  # Saturday 补班
        assert not cal.is_provisional(date(2026, 12, 1), date(2027, 3, 1))

    def test_weekends_only_fallback_is_explicit_and_flagged_provisional(self) -> None:
        cal = WorkCalendar(fallback="weekends_only")
        assert cal.is_workday(date(2027, 1, 4))
        assert not cal.is_workday(date(2027, 1, 9))
        assert not cal.is_known(date(2027, 1, 4))
        assert cal.is_known(date(2026, 12, 31))
        assert cal.is_provisional(date(2026, 12, 28), date(2027, 1, 5))
        assert not cal.is_provisional(date(2026, 12, 1), date(2026, 12, 31))

    def test_unknown_fallback_is_refused(self) -> None:
        with pytest.raises(ValueError):
            WorkCalendar(fallback="guess")  # type: ignore[arg-type]


class TestWorkingDays:
    def test_counting_starts_the_day_after_and_ends_at_close_of_business(self) -> None:
        # Monday 10:00 + 5 工作日 → the following Monday 17:30.
        assert CAL.add_working_days(at(2026, 11, 23, 10), 5) == at(2026, 11, 30, 17, 30)

    def test_friday_evening_and_the_weekend_start_counting_on_monday(self) -> None:
        due = at(2026, 11, 27, 17, 30)
        assert CAL.add_working_days(at(2026, 11, 20, 20, 15), 5) == due
        assert CAL.add_working_days(at(2026, 11, 21, 11), 5) == due
        assert CAL.add_working_days(at(2026, 11, 22, 23, 59), 5) == due

    def test_national_day_2026(self) -> None:
        start = at(2026, 9, 30, 10)  # Wednesday before the holiday
        assert CAL.add_working_days(start, 1) == at(2026, 10, 8, 17, 30)
        assert CAL.add_working_days(start, 3) == at(2026, 10, 10, 17, 30)  # the Saturday 补班 counts
        assert CAL.add_working_days(start, 4) == at(2026, 10, 12, 17, 30)
        # The Sunday 补班 before the holiday counts too.
        assert CAL.add_working_days(at(2026, 9, 19, 9), 1) == at(2026, 9, 20, 17, 30)

    def test_spring_festival_2026(self) -> None:
        # Matches chinese_calendar.find_workday(3, 2026-02-12) (reference §6.2).
        assert CAL.add_working_days(at(2026, 2, 12, 15), 3) == at(2026, 2, 24, 17, 30)
        assert CAL.add_working_days(at(2026, 2, 13, 15), 1) == at(2026, 2, 14, 17, 30)

    def test_same_day_counting(self) -> None:
        assert CAL.add_working_days(at(2026, 11, 23, 10), 1, from_next_day=False) == at(2026, 11, 23, 17, 30)
        assert CAL.add_working_days(at(2026, 11, 23, 10), 5, from_next_day=False) == at(2026, 11, 27, 17, 30)
        # After close of business, or on a rest day, the first day is the next working day.
        assert CAL.add_working_days(at(2026, 11, 23, 18), 1, from_next_day=False) == at(2026, 11, 24, 17, 30)
        assert CAL.add_working_days(at(2026, 11, 21, 10), 1, from_next_day=False) == at(2026, 11, 23, 17, 30)

    def test_crossing_into_2027_needs_data(self) -> None:
        with pytest.raises(CalendarGapError) as err:
            CAL.add_working_days(at(2026, 12, 28, 10), 5)
        assert err.value.day == date(2027, 1, 1)  # the first day nobody knows, not the due day
        cal = WorkCalendar(overrides=NOTICE_2027, override_years={2027})
        # Mon 12-28: 29, 30, 31, (01-01 off, weekend), 01-04, 01-05.
        assert cal.add_working_days(at(2026, 12, 28, 10), 5) == at(2027, 1, 5, 17, 30)

    def test_subtract_keeps_the_time_of_day(self) -> None:
        assert CAL.subtract_working_days(at(2026, 11, 30, 17, 30), 1) == at(2026, 11, 27, 17, 30)
        assert CAL.subtract_working_days(at(2026, 10, 12, 10), 2) == at(2026, 10, 9, 10)
        assert CAL.subtract_working_days(at(2026, 10, 12, 10), 0) == at(2026, 10, 12, 10)

    def test_results_are_in_the_calendar_zone(self) -> None:
        start = datetime(2026, 11, 23, 2, tzinfo=ZoneInfo("UTC"))  # 10:00 in Shanghai
        due = CAL.add_working_days(start, 1)
        assert due == at(2026, 11, 24, 17, 30)
        assert due.tzinfo == SH
        # The start's day is its day in the calendar's zone: 23:00 UTC on Tuesday is Wednesday there.
        assert CAL.add_working_days(datetime(2026, 11, 17, 23, tzinfo=UTC), 1) == at(2026, 11, 19, 17, 30)

    def test_naive_and_non_positive_are_refused(self) -> None:
        with pytest.raises(ValueError):
            CAL.add_working_days(datetime(2026, 11, 23, 10), 1)
        with pytest.raises(ValueError):
            CAL.add_working_days(at(2026, 11, 23, 10), 0)

    def test_years_without_a_working_day_are_a_gap_not_a_loop(self) -> None:
        first = date(2026, 11, 24)
        never = {date.fromordinal(first.toordinal() + i): False for i in range(4 * 366)}
        cal = WorkCalendar(overrides=never, override_years={2027, 2028, 2029, 2030})
        with pytest.raises(CalendarGapError):
            cal.add_working_days(at(2026, 11, 23, 10), 1)


class TestValue:
    def test_equal_calendars_compare_and_hash_equal(self) -> None:
        # Routing compares directory bundles, which carry the tenant's calendar.
        a = WorkCalendar(overrides={date(2027, 1, 1): False}, override_years=[2027])
        b = WorkCalendar("Asia/Shanghai", {date(2027, 1, 1): False}, DEFAULT_WORKING_HOURS, override_years={2027})
        assert a == b and hash(a) == hash(b)
        assert WorkCalendar() == WorkCalendar()
        assert a != WorkCalendar()
        assert WorkCalendar() != WorkCalendar(tz="Europe/Berlin")
        assert WorkCalendar() != WorkCalendar(working_hours=((time(9), time(17)),))
        assert WorkCalendar() != WorkCalendar(fallback="weekends_only")


class TestWorkingHours:
    def test_lunch_break_is_skipped(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 23, 11), 2) == at(2026, 11, 23, 14, 30)

    def test_evening_start_counts_from_the_next_window(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 23, 19), 1) == at(2026, 11, 24, 10)

    def test_friday_evening_start_counts_from_monday(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 20, 18), 4) == at(2026, 11, 23, 14, 30)
        assert CAL.add_working_hours(at(2026, 11, 20, 16), 4) == at(2026, 11, 23, 11, 30)

    def test_holiday_is_skipped_and_make_up_saturday_counts(self) -> None:
        assert CAL.add_working_hours(at(2026, 9, 30, 17), 1) == at(2026, 10, 8, 9, 30)
        assert CAL.add_working_hours(at(2026, 10, 9, 17), 1) == at(2026, 10, 10, 9, 30)

    def test_ending_exactly_at_the_end_of_a_window_stays_there(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 23, 9), 7) == at(2026, 11, 23, 17, 30)
        assert CAL.add_working_hours(at(2026, 11, 23, 9), 3) == at(2026, 11, 23, 12)

    def test_backwards(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 23, 10), -4) == at(2026, 11, 20, 14, 30)
        assert CAL.add_working_hours(at(2026, 11, 23, 10), -1) == at(2026, 11, 23, 9)

    def test_timedelta_and_zero(self) -> None:
        assert CAL.add_working_hours(at(2026, 11, 23, 11), timedelta(minutes=90)) == at(2026, 11, 23, 14)
        assert CAL.add_working_hours(at(2026, 11, 21, 3), 0) == at(2026, 11, 21, 3)

    def test_working_time_between(self) -> None:
        assert CAL.working_time_between(at(2026, 11, 20, 16), at(2026, 11, 23, 11)) == timedelta(hours=3, minutes=30)
        assert CAL.working_time_between(at(2026, 9, 30, 9), at(2026, 10, 9, 0)) == timedelta(hours=14)
        assert CAL.working_time_between(at(2026, 11, 23, 11), at(2026, 11, 20, 16)) == -timedelta(hours=3, minutes=30)
        assert CAL.working_time_between(at(2026, 11, 21, 9), at(2026, 11, 22, 18)) == timedelta(0)

    def test_windows_are_configurable(self) -> None:
        # One city's analysis code uses 08:00–11:30 and 14:00–20:00 (domain §1.5, S65).
        cal = WorkCalendar(working_hours=((time(8), time(11, 30)), (time(14), time(20))))
        assert cal.add_working_hours(at(2026, 11, 23, 11), 1) == at(2026, 11, 23, 14, 30)
        assert cal.add_working_days(at(2026, 11, 23, 10), 1) == at(2026, 11, 24, 20)
        assert cal.working_windows(date(2026, 11, 21)) == []

    @pytest.mark.parametrize(
        "hours",
        [
            (),
            ((time(12), time(9)),),
            ((time(9), time(12)), (time(11), time(17))),
        ],
    )
    def test_bad_windows_are_refused(self, hours: tuple[tuple[time, time], ...]) -> None:
        with pytest.raises(ValueError):
            WorkCalendar(working_hours=hours)


class TestNaturalHours:
    def test_counts_nights_weekends_and_holidays(self) -> None:
        assert CAL.add_natural_hours(at(2026, 10, 1, 23), 2) == at(2026, 10, 2, 1)

    def test_uses_absolute_time_across_a_dst_change(self) -> None:
        berlin = ZoneInfo("Europe/Berlin")
        cal = WorkCalendar(tz="Europe/Berlin")
        start = datetime(2026, 3, 29, 1, 30, tzinfo=berlin)  # clocks go 02:00 → 03:00
        assert cal.add_natural_hours(start, 1) == datetime(2026, 3, 29, 3, 30, tzinfo=berlin)
