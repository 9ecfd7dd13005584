"""intake's CALENDAR_OVERRIDES for the shared working calendar (the calendar itself is tested in
tests/unit/calendar; the request windows in test_state_machine)."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from intake.settings import IntakeSettings
from intake.workdays import parse_overrides

KEYS = {
    "pii_key": "x",
    "pii_transit_key": "x",
    "database_url": "postgresql://u@h/db",
    "kafka_bootstrap_servers": "localhost:9092",
}


def test_overrides_come_first_and_complete_years_fall_back_to_weekdays() -> None:
    cal = parse_overrides({"330106": {"days": {"2026-11-23": False, "2027-02-07": True}, "complete_years": [2027]}})[
        "330106"
    ]
    assert not cal.is_workday(date(2026, 11, 23))
    assert cal.is_workday(date(2027, 2, 7))  # a Sunday 补班 from the notice
    assert cal.is_workday(date(2027, 3, 1)) and not cal.is_workday(date(2027, 3, 6))


@pytest.mark.parametrize(
    "raw",
    [
        "[1]",
        '{"330106": []}',
        '{"330106": {"days": {"2027-13-01": false}}}',
        '{"330106": {"days": {"2027-01-01": "no"}}}',
        "not json",
    ],
)
def test_bad_overrides_stop_the_service_at_start(raw: str) -> None:
    with pytest.raises(ValidationError, match="CALENDAR_OVERRIDES"):
        IntakeSettings(**KEYS, calendar_overrides=raw)  # type: ignore[arg-type]


def test_settings_build_the_rules_with_each_tenants_calendar() -> None:
    s = IntakeSettings(**KEYS, calendar_overrides='{"330106": {"days": {"2026-11-23": false}}}')  # type: ignore[arg-type]
    rules = s.rules
    assert rules.return_window_working_days == 2 and rules.extension_lead_working_days == 1
    assert not rules.calendar("330106").is_workday(date(2026, 11, 23))
    assert rules.calendar("330108").is_workday(date(2026, 11, 23))
