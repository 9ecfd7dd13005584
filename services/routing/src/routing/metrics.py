"""routing's business metrics. Unit labels are bounded: a code not in the tenant's directory counts as "other"."""

from prometheus_client import Counter

DECISIONS = Counter(
    "routing_decisions_total", "Dispatch decisions by outcome and (for manual) reason code.", ["outcome", "reason"]
)
DUPLICATES = Counter("routing_duplicates_total", "Tickets merged into an open one (并单), by how.", ["how"])
RETURNS = Counter(
    "routing_returns_total", "退单 requests and their review outcome, per returning unit.", ["unit", "outcome"]
)
REROUTES = Counter(
    "routing_reroutes_total", "改派 after an approved return, per unit the ticket was taken from.", ["unit", "outcome"]
)
DISPATCHER_ACTIONS = Counter(
    "routing_dispatcher_actions_total",
    "Dispatcher commands applied (dispatch, reassign, merge, unmerge, review).",
    ["action"],
)
CALENDAR_GAPS = Counter(
    "routing_calendar_gaps_total",
    "退单 review windows that could not be computed: no working-day data for a year (enter calendar overrides).",
)
