from prometheus_client import Counter

TICKS = Counter("escalation_clock_ticks_total", "Due clocks processed by the timer.")
CALENDAR_GAPS = Counter(
    "escalation_calendar_gap_errors_total", "Timer iterations that hit a day with no working-calendar data."
)
