"""escalation's business metrics; only the edges (timer, handlers, api) touch them."""

from prometheus_client import Counter, Gauge, Histogram

TICKS = Counter("escalation_clock_ticks_total", "Due clocks processed by the timer.")
STEPS = Counter("escalation_steps_fired_total", "Milestones fired by the timer (warnings, breaches, ladder steps).")
CALENDAR_GAPS = Counter(
    "escalation_calendar_gap_errors_total", "Clocks whose next step hit a day with no working-calendar data."
)
REJECTED = Counter(
    "escalation_lifecycle_rejected_total", "Lifecycle events that could not be applied to a clock.", ["code"]
)
TIMER_LAG = Histogram(
    "escalation_timer_lag_seconds",
    "From a clock's due time to the commit of the transaction that fired it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0),
)
# Bounded labels: tenants (a few cities or districts), never units or tickets.
OVERDUE_OPEN = Gauge(
    "escalation_overdue_open_clocks", "超期未结: open handling clocks past their deadline.", ["tenant"]
)
# Bounded labels: kind (sign, handle), colour (green, yellow, red …) and ladder level (E0–E7 or
# "none") per tenant — a few dozen series each. Feeds the SLA dashboard's open-by-colour and
# escalations-by-level panels.
OPEN_CLOCKS = Gauge(
    "escalation_open_clocks",
    "Open (not stopped) clocks by kind, colour and supervision-ladder level.",
    ["tenant", "kind", "colour", "level"],
)
# Bounded labels: per tenant only the units on the month's 红黑榜 (≤ 2 × RATE_GAUGE_K), and the
# rate names of rankings.RATE_NAMES plus "score"; refreshed (and stale units dropped) by the timer.
UNIT_RATE = Gauge(
    "escalation_unit_rate",
    "This month's rates (0–1) and composite score (0–100) of the units on the 红黑榜.",
    ["tenant", "unit", "rate"],
)
