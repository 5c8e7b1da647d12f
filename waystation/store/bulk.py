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

from sqlalchemy.engine import Connection


@cache
def _for_driver(sql: str, paramstyle: str) -> str:
    if paramstyle == "qmark":
        return sql
    if paramstyle in ("format", "pyformat"):
        return sql.replace("?", "%s")
    raise NotImplementedError(f"paramstyle {paramstyle!r}")


def executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` once per row of ``rows`` (nothing when there are none)."""
    if rows:
        conn.exec_driver_sql(_for_driver(sql, conn.dialect.paramstyle), list(rows))


def fetch(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of one query written with ``?`` placeholders."""
    return list(conn.exec_driver_sql(_for_driver(sql, conn.dialect.paramstyle), params))


def placeholders(n: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` list of ``n`` values."""
    return ", ".join("?" * n)
