"""The tenant's calendar in routing's directory bundle: its overrides and close of business feed the
shared working calendar (gridline_calendar, tested in tests/unit/calendar) that times the 退单 review
window; a gap is explained in terms of the bundle."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from gridline_calendar import DEFAULT_WORKING_HOURS, CalendarGapError, WorkCalendar
from routing import synthcity
from routing.directory import assemble, calendar_gap_reason, load_bundle, load_geojson

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


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
    assert cal.working_hours == ((time(9), time(12)), (time(13, 30), time(18)))
    assert cal.is_workday(date(2027, 2, 7))  # a Sunday 补班
    assert cal.add_working_days(at(2026, 12, 31), 1) == at(2027, 1, 4, 18, 0)
    for bad in (
        {"overrides": {"2027-13-01": False}},
        {"overrides": {"2027-01-01": "no"}},
        {"override_years": ["2027"]},
        {"close_of_business": "late"},
        {"close_of_business": "08:30"},  # before the first working-hour window opens
        ["2027-01-01"],
    ):
        _, report = load_bundle(city.bundle | {"calendar": bad})
        assert "bad_calendar" in report.codes("error"), bad
    bundle, _ = load_bundle(city.bundle)
    assert bundle.calendar == WorkCalendar() and bundle.calendar.working_hours == DEFAULT_WORKING_HOURS


@pytest.mark.parametrize(
    ("close", "hours"),
    [
        ("17:30", DEFAULT_WORKING_HOURS),
        ("12:30", ((time(9), time(12, 30)),)),
        ("11:00", ((time(9), time(11)),)),
    ],
)
def test_close_of_business_ends_the_last_window(close: str, hours: tuple[tuple[time, time], ...]) -> None:
    bundle, report = load_bundle(synthcity.generate(100, seed=3).bundle | {"calendar": {"close_of_business": close}})
    assert report.ok, report.codes("error")
    assert bundle.calendar.working_hours == hours


def test_a_gap_names_the_bundle_keys_to_fill() -> None:
    with pytest.raises(CalendarGapError) as err:
        WorkCalendar().add_working_days(at(2026, 12, 31), 1)
    reason = calendar_gap_reason(err.value)
    assert reason.startswith("2027-01-01 缺少工作日历数据")
    assert "calendar.overrides" in reason and "calendar.override_years" in reason
