from prometheus_client import Counter, Histogram

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
