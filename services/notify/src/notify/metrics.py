from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "notify_sends_total", "Provider attempts by channel, provider and outcome.", ["channel", "provider", "outcome"]
)
SEND_SECONDS = Histogram(
    "notify_send_seconds",
    "Provider call latency.",
    ["channel", "provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRIES = Counter("notify_retries_total", "Attempts that will be retried.", ["channel", "provider"])
FAILOVERS = Counter(
    "notify_failovers_total", "Messages moved to the next provider, by the one left.", ["channel", "provider"]
)
DEFERRALS = Counter("notify_deferrals_total", "Messages deferred by rate limits or quiet hours.", ["reason"])
DEAD = Counter("notify_failed_total", "Messages that failed for good (dead letters), by code.", ["channel", "code"])
AMBIGUOUS = Counter("notify_ambiguous_total", "Sends interrupted mid-call and held back from resending.")
SETTLED = Counter("notify_settled_total", "Ambiguous sends settled by provider lookups.", ["provider", "result"])
RECEIPTS = Counter(
    "notify_receipts_total", "Carrier delivery receipts received, by provider and result.", ["provider", "result"]
)

# 12345 sync-back (syncback.py)
SYNCBACK_QUEUED = Counter("notify_syncback_queued_total", "Status pushes queued for a 12345 platform.", ["integration"])
SYNCBACK_SENT = Counter("notify_syncback_sent_total", "Status pushes acknowledged by the platform.", ["integration"])
SYNCBACK_RETRIES = Counter(
    "notify_syncback_retries_total", "Status pushes scheduled again after a try.", ["integration"]
)
SYNCBACK_FAILURES = Counter(
    "notify_syncback_failures_total",
    "Tries not acknowledged, by cause (http.503, nack.N, timeout…).",
    ["integration", "code"],
)
SYNCBACK_SECONDS = Histogram(
    "notify_syncback_request_seconds",
    "Platform callback latency.",
    ["integration"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SYNCBACK_LAG = Histogram(
    "notify_syncback_lag_seconds",
    "From the lifecycle event to the platform's acknowledgement.",
    ["integration"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
SYNCBACK_PENDING = Gauge("notify_syncback_pending", "Status pushes not yet acknowledged.")
SYNCBACK_OLDEST_AGE = Gauge(
    "notify_syncback_oldest_pending_age_seconds", "Age of the oldest unacknowledged status push (0: none)."
)
