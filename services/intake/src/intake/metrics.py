from prometheus_client import Counter

RECEIVED = Counter("intake_tickets_received_total", "Reports accepted, by channel.", ["channel"])
