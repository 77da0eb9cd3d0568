"""Which failures the core retries as the database's, and which it dead-letters."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InvalidRequestError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hub.core.batch import is_transient

STATEMENT = "INSERT INTO movements (sku, reason) VALUES ($1, $2)"
# Values of the batch: a SKU's name that says "connection", a reason that says "terminal".
PARAMS = ("USB-C-CONNECTION-CABLE", "to store-terminal-2")


class DataTooLong(Exception):
    """What a driver raises for a value its column cannot hold."""


@pytest.mark.parametrize(
    "exc",
    [
        DBAPIError(STATEMENT, PARAMS, DataTooLong("value too long for type character varying(64)")),
        IntegrityError(STATEMENT, PARAMS, DataTooLong("violates check constraint")),
        ValueError("connection-cable has no price"),  # the hub's own error, naming a value
    ],
)
def test_an_error_that_recurs_is_not_taken_for_the_database_going_away(exc):
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError(STATEMENT, PARAMS, sqlite3.OperationalError("database is locked")),
        DBAPIError(STATEMENT, PARAMS, DataTooLong("terminating connection due to administrator")),
        DBAPIError(STATEMENT, PARAMS, DataTooLong("x"), connection_invalidated=True),
        PoolTimeout("QueuePool limit of size 5 overflow 5 reached, connection timed out"),
        ConnectionError("database restarting"),
        sqlite3.OperationalError("database is locked"),  # from the driver, not wrapped
    ],
)
def test_the_database_going_away_is_retried(exc):
    assert is_transient(exc)


class ServerError(Exception):
    """A server's error as the driver reports it, with its SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "message", "passing"),
    [
        ("57P03", "the database system is starting up", True),
        ("57P01", "terminating connection due to administrator command", True),
        ("53300", "sorry, too many clients already", True),
        ("08006", "connection failure", True),
        ("40P01", "deadlock detected", True),
        ("25006", "cannot execute UPDATE in a read-only transaction", True),  # a failover
        ("57014", "canceling statement due to statement timeout", True),
        ("22001", 'value too long for type character varying(64): "connection"', False),
        ("23514", 'new row for relation "stock" violates check constraint', False),
    ],
)
def test_a_servers_error_is_judged_by_its_sqlstate_not_its_words(sqlstate, message, passing):
    assert is_transient(DBAPIError(STATEMENT, PARAMS, ServerError(message, sqlstate))) is passing


def test_the_librarys_own_word_that_a_connection_closed_is_taken_as_passing():
    assert is_transient(InvalidRequestError("This connection is closed"))
    assert is_transient(StatementError("ping failed", STATEMENT, PARAMS, ConnectionResetError()))
    assert not is_transient(StatementError("bad value", STATEMENT, PARAMS, ValueError("x")))


def test_a_value_the_driver_cannot_send_is_not_taken_for_a_lost_connection():
    """asyncpg refuses an integer beyond 32 bits before sending it (a ValueError), which the
    adapter hands on as an InterfaceError, the type of a closed connection."""
    from asyncpg.exceptions import _base

    sent = Exception("invalid input for query argument $1: 3000000000 (out of int32 range)")
    sent.__cause__ = _base.DataError("value out of int32 range")
    assert not is_transient(InterfaceError(STATEMENT, PARAMS, sent))
    closed = Exception("connection is closed")
    closed.__cause__ = _base.InterfaceError("connection is closed")
    assert is_transient(InterfaceError(STATEMENT, PARAMS, closed))
