"""Is this failure an outage (database or network not there right now) rather than bad input or a bug?

Used by the HTTP edge (503 + Retry-After, no stack trace per request) and, with Kafka's errors
added, by gridline_messaging (retry without limit instead of dead-lettering; reconnect the relay).
"""

from __future__ import annotations

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


def is_outage(exc: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """Database or network trouble (or one of `also`) anywhere in the cause chain.

    SQLAlchemy wraps driver errors, so the whole chain is inspected.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, InterfaceError, OSError, ConnectionError, TimeoutError, *also)):
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
