"""The server-wide change sequence and the small persistent settings beside it.

The sequence is one row of ``counters`` bumped with ``UPDATE ... RETURNING`` at the end of
a write transaction. The row lock is held until commit, so on PostgreSQL a transaction that
allocated a lower seq always commits before one that allocated a higher seq: a pull can
never pass a change that is still to commit with a lower number. (On SQLite the single
writer gives the same guarantee.)
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.store.tables import counters, meta

_BUMP = sa.text("UPDATE counters SET value = value + :n WHERE name = :name RETURNING value")


def allocate_seqs(conn: Connection, n: int) -> range:
    """Reserve ``n`` consecutive seqs; call last in the transaction (it serialises writers)."""
    top = conn.execute(_BUMP, {"n": n, "name": "seq"}).scalar_one()
    return range(top - n + 1, top + 1)


def read_counter(conn: Connection, name: str) -> int:
    return int(conn.execute(sa.select(counters.c.value).where(counters.c.name == name))
               .scalar_one())


def set_counter(conn: Connection, name: str, value: int) -> None:
    conn.execute(sa.update(counters).where(counters.c.name == name).values(value=value))


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def put_meta(conn: Connection, key: str, value: str) -> None:
    updated = conn.execute(sa.update(meta).where(meta.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(sa.insert(meta).values(key=key, value=value))


def get_or_create_meta(conn: Connection, key: str, make: str) -> str:
    """Read ``key``, or store ``make`` under it the first time (in a write transaction)."""
    value = get_meta(conn, key)
    if value is None:
        put_meta(conn, key, make)
        return make
    return value


def new_secret() -> str:
    return secrets.token_urlsafe(48)
