"""Messaging metrics shared by every service (names follow Prometheus conventions; no ids in labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "gridline_messages_consumed_total",
    "Messages taken from Kafka, by outcome: processed, duplicate (inbox hit), ignored (not for this "
    "consumer), dead_lettered.",
    ["service", "topic", "type", "outcome"],
)
PRODUCED = Counter(
    "gridline_messages_produced_total",
    "Messages the outbox relay published and Kafka acknowledged.",
    ["service", "topic"],
)
FAILED = Counter(
    "gridline_messages_failed_total",
    "Failures while handling or publishing, by stage: handler (will retry), infrastructure (database or "
    "Kafka unreachable, retried without limit), publish (relay).",
    ["service", "stage"],
)
DEAD_LETTERED = Counter(
    "gridline_dead_letters_total",
    "Messages sent to the dead-letter topic, by reason code.",
    ["service", "topic", "reason"],
)
HANDLER_SECONDS = Histogram(
    "gridline_handler_duration_seconds",
    "Time to apply one message (decode, inbox claim, effect, commit), by event type.",
    ["service", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
OUTBOX_PENDING = Gauge("gridline_outbox_pending_messages", "Rows in the outbox not yet published.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "gridline_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row (0 when empty).",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "gridline_consumer_lag_messages",
    "High-water mark minus committed position, per partition.",
    ["service", "topic", "partition"],
)
EVENT_LATENCY = Histogram(
    "gridline_event_age_at_consume_seconds",
    "Time from an event's ce_time to the moment this consumer applied it.",
    ["service", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
