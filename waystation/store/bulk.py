"""Bulk statements at the driver level: one SQL text, a list of tuples, one executemany.

A push writes thousands of rows. Through SQLAlchemy's compiled statements every row's
parameters are built and checked in Python (about a third of a push's time when measured);
the driver's own ``executemany`` with plain tuples skips that. The SQL is written once with
``?`` placeholders and rewritten for drivers that use ``%s`` (psycopg), so the text stays
portable: no ``?`` or ``%`` may appear in it otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection


@cache
def _for_driver(sql: str, paramstyle: str) -> str:
    if paramstyle == "qmark":
        return sql
    if paramstyle in ("format", "pyformat"):
        return sql.replace("?", "%s")
    raise NotImplementedError(f"paramstyle {paramstyle!r}")


def executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` once per row of ``rows`` (nothing when there are none).

    On PostgreSQL a plain ``INSERT INTO t (columns) VALUES (?, ...)`` (no ``ON CONFLICT``)
    becomes a ``COPY t (columns) FROM STDIN``: an executemany sends one statement per row
    for the server to plan and answer (about 30 us a row when measured), COPY streams the
    rows. A unique violation fails the COPY with the same SQLSTATE as the INSERT would.
    """
    if not rows:
        return
    paramstyle = conn.dialect.paramstyle
    copy = _copy_statement(sql) if paramstyle != "qmark" else None
    if copy is None:
        conn.exec_driver_sql(_for_driver(sql, paramstyle), list(rows))
        return
    driver_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(copy) as stream:
            for row in rows:
                stream.write_row(row)
    except driver_error as error:
        # wrapped as SQLAlchemy wraps its own statements' errors, so that callers (the
        # lost-race retry of Database.transact) see one kind of error whatever the path
        raise exc.DBAPIError.instance(
            copy, None, error, driver_error, dialect=conn.dialect
        ) from error
    finally:
        cursor.close()


@cache
def _copy_statement(sql: str) -> str | None:
    """``COPY t (columns) FROM STDIN`` for ``INSERT INTO t (columns) VALUES (?, ...)``."""
    if not sql.startswith("INSERT INTO ") or " VALUES (" not in sql:
        return None
    head, rest = sql.split(" VALUES ", 1)
    if rest.index(")") + 1 != len(rest):  # ON CONFLICT or anything else after the values
        return None
    return "COPY " + head.removeprefix("INSERT INTO ") + " FROM STDIN"


def fetch(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of one query written with ``?`` placeholders."""
    return list(conn.exec_driver_sql(_for_driver(sql, conn.dialect.paramstyle), params))


def one_of(column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """``column IN (?, ...)`` and its parameters.

    (PostgreSQL's ``= ANY(array)`` sends one parameter instead of hundreds, but its generic
    plan, made once the statement is prepared, chose sequential scans when measured.)"""
    return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)
