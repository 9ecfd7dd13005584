"""Is this failure the infrastructure (database, network, broker) rather than the message or the code?

Shared by the consumer (retry without limit instead of dead-lettering), the outbox relay and the
services' own background loops (reconnect instead of dying).
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATE classes that mean "the database is not there right now", not "this message is bad":
# 08 connection exception, 53 insufficient resources, 57P operator intervention (shutdown, crash
# recovery, "the database system is starting up"), 40001/40P01 serialization failure and deadlock.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01", "58")
_TRANSIENT_NAMES = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "TooManyConnectionsError",
    "AdminShutdownError",
    "CrashShutdownError",
    "ConnectionFailureError",
    "InterfaceError",
    "InternalClientError",
    "ConnectionRejectionError",
}


def is_infrastructure_error(exc: BaseException) -> bool:
    """Database or network trouble: retry without limit rather than dead-letter good messages.

    SQLAlchemy wraps driver errors, so the whole cause chain is inspected.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, InterfaceError, OSError, ConnectionError, TimeoutError, KafkaError)):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _TRANSIENT_NAMES:
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
