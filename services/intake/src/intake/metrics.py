from prometheus_client import Counter

RECEIVED = Counter("intake_tickets_received_total", "Reports accepted, by channel.", ["channel"])
ATTACHMENT_FETCHES = Counter(
    "intake_attachment_fetches_total", "12345 attachment URL fetches, by outcome (stored, retry, failed).", ["outcome"]
)
