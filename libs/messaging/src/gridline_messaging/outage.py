"""Is this failure the infrastructure (database, network, broker) rather than the message or the code?

Shared by the consumer (retry without limit instead of dead-lettering), the outbox relay and the
services' own background loops (reconnect instead of dying).
"""

from __future__ import annotations

from aiokafka.errors import KafkaError

from gridline_boot.outage import is_outage


def is_infrastructure_error(exc: BaseException) -> bool:
    """Database, network or broker trouble: retry without limit rather than dead-letter good messages."""
    return is_outage(exc, also=(KafkaError,))
