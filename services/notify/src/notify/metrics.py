from prometheus_client import Counter

SENDS = Counter(
    "notify_sends_total", "Provider attempts by channel, provider and outcome.", ["channel", "provider", "outcome"]
)
AMBIGUOUS = Counter("notify_ambiguous_total", "Sends interrupted mid-call and held back from resending.")
