"""Outage classification: what a consumer retries without limit and what the relay reconnects
through, versus a failure that belongs to the message or the code."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gridline_messaging.outage import is_infrastructure_error


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException) -> DBAPIError:
    """What SQLAlchemy's asyncpg dialect raises: its own class with the driver error as `orig`."""
    return DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")),
        wrapped(_PgError("57P01")),  # admin shutdown
        wrapped(_PgError("08006")),  # connection failure
        wrapped(_PgError("40001")),  # serialization failure: retry the transaction
        ConnectionRefusedError(111, "Connection refused"),
        KafkaConnectionError(),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(getattr(e, "orig", None), "sqlstate", "")),
)
def test_outages_are_infrastructure(exc: BaseException) -> None:
    assert is_infrastructure_error(exc)


def test_an_outage_found_through_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("handler failed") from inner
    except RuntimeError as outer:
        assert is_infrastructure_error(outer)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad payload"),
        IntegrityError("INSERT", {}, _PgError("23505")),  # unique violation: the data, not the database
        wrapped(_PgError("22P02")),  # invalid text representation
        KeyError("category"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_bad_data_are_not(exc: BaseException) -> None:
    assert not is_infrastructure_error(exc)
