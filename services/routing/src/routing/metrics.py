from prometheus_client import Counter

DECISIONS = Counter(
    "routing_decisions_total", "Dispatch decisions by outcome and (for manual) reason code.", ["outcome", "reason"]
)
