"""The 退单 review window in 工作日: chinese_calendar (holidays, 调休 days off, 补班 days) plus the
tenant's overrides from the directory bundle; a year nobody covers is a clear error, never a guess."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from routing import synthcity
from routing.directory import assemble, load_bundle, load_geojson
from routing.workdays import CalendarGap, WorkingDays

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def test_next_working_day_close_of_business() -> None:
    cal = WorkingDays()
    assert cal.review_due(at(2026, 11, 18), 1) == at(2026, 11, 19, 17, 30)  # Wednesday → Thursday
    assert cal.review_due(at(2026, 11, 20, 16), 1) == at(2026, 11, 23, 17, 30)  # Friday → Monday
    assert cal.review_due(at(2026, 11, 21), 1) == at(2026, 11, 23, 17, 30)  # Saturday → Monday
    assert cal.review_due(at(2026, 11, 18), 2) == at(2026, 11, 20, 17, 30)
    # The instant is read in Shanghai time: 23:00 UTC on Tuesday is already Wednesday there.
    assert cal.review_due(datetime(2026, 11, 17, 23, 0, tzinfo=UTC), 1) == at(2026, 11, 19, 17, 30)


def test_holidays_and_make_up_working_days() -> None:
    cal = WorkingDays()
    # 国庆 2026: 1–7 October off; the window started on 30 September runs past the holiday.
    assert cal.review_due(at(2026, 9, 30), 1) == at(2026, 10, 8, 17, 30)
    # 2026 Spring Festival: 补班 on Saturday 14 February 2026 is a working day.
    assert cal.is_workday(date(2026, 2, 14)) and not cal.is_workday(date(2026, 2, 16))
    assert cal.review_due(at(2026, 2, 13), 1) == at(2026, 2, 14, 17, 30)


def test_an_uncovered_year_is_a_clear_error_and_overrides_fill_it() -> None:
    with pytest.raises(CalendarGap) as err:
        WorkingDays().review_due(at(2026, 12, 31), 1)
    assert err.value.code == "calendar_gap" and err.value.day == date(2027, 1, 1)
    assert "2027" in err.value.message and "calendar.overrides" in err.value.message
    entered = WorkingDays(overrides={date(2027, 1, 1): False}, override_years={2027})
    assert entered.review_due(at(2026, 12, 31), 1) == at(2027, 1, 4, 17, 30)  # Fri 1 Jan off, weekend, Monday
    # A tenant's local holiday, and a local make-up day, win over the library.
    local = WorkingDays(overrides={date(2026, 11, 19): False, date(2026, 11, 21): True})
    assert local.review_due(at(2026, 11, 18), 1) == at(2026, 11, 20, 17, 30)
    assert local.review_due(at(2026, 11, 20), 1) == at(2026, 11, 21, 17, 30)


def test_naive_or_zero_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        WorkingDays().review_due(datetime(2026, 11, 18, 10, 0), 1)
    with pytest.raises(ValueError):
        WorkingDays().review_due(at(2026, 11, 18), 0)


def test_the_bundle_carries_the_tenant_calendar() -> None:
    city = synthcity.generate(100, seed=3)
    calendar = {
        "overrides": {"2027-01-01": False, "2027-02-07": True},
        "override_years": [2027],
        "close_of_business": "18:00",
    }
    bundle, report = load_bundle(city.bundle | {"calendar": calendar})
    assert report.ok, report.codes("error")
    grids, _ = load_geojson(city.grids)
    directory, _ = assemble(bundle, grids)
    cal = directory.calendar
    assert cal.close_of_business == time(18, 0) and cal.is_workday(date(2027, 2, 7))  # a Sunday 补班
    assert cal.review_due(at(2026, 12, 31), 1) == at(2027, 1, 4, 18, 0)
    for bad in (
        {"overrides": {"2027-13-01": False}},
        {"overrides": {"2027-01-01": "no"}},
        {"override_years": ["2027"]},
        {"close_of_business": "late"},
        ["2027-01-01"],
    ):
        _, report = load_bundle(city.bundle | {"calendar": bad})
        assert "bad_calendar" in report.codes("error"), bad
    bundle, _ = load_bundle(city.bundle)
    assert bundle.calendar == WorkingDays()
