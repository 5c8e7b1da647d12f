"""The server-wide change sequence and the small persistent settings beside it.

The sequence is one row of ``counters`` bumped with ``UPDATE ... RETURNING`` at the start
of a write transaction's write phase (after every read and decision). The row lock that
UPDATE takes is held until COMMIT, so on PostgreSQL the next writer to allocate waits until
this one has committed, and PostgreSQL makes a commit visible before it releases the
transaction's locks. Hence every transaction holding seqs below ``n`` is visible to any
snapshot that sees ``n``: a pull can never pass a change that is still to commit with a
lower number, and seqs become visible in commit order. (On SQLite the single writer gives
the same guarantee.) The price is that write phases — not the reads and merge decisions
before them — run one at a time; ``docs/operations.md`` discusses it.

Lock order of a write transaction (never the other way round, so writers cannot deadlock
on these): the records it touches (``SELECT ... FOR UPDATE``, sorted by collection and id)
→ ``counters['seq']`` → ``meta['last_hlc']`` → its ``devices`` row.

``WAYSTATION_UNSAFE_NAIVE_SEQ=1`` (tests only) makes PostgreSQL allocate seqs the naive way,
in a separate transaction committed at once as a SEQUENCE would, so that the ordering test
can show it catches the changes such an allocator lets pulls skip.
"""

from __future__ import annotations

import logging
import os
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.hlc import HLC
from waystation.store.tables import counters, meta
from waystation.store.transaction import Transaction

_BUMP = sa.text("UPDATE counters SET value = value + :n WHERE name = :name RETURNING value")
_INSERT_META = sa.text(
    "INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING"
)
_UPSERT_META = sa.text(
    "INSERT INTO meta (key, value) VALUES (:key, :value)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

log = logging.getLogger("waystation.store")

# Test-only switch (see the module docstring); read once, at import.
naive_allocation = os.environ.get("WAYSTATION_UNSAFE_NAIVE_SEQ") == "1"
_warned = False


def allocate_seqs(tx: Transaction, n: int) -> range:
    """Reserve ``n`` consecutive seqs; call it once all reads are done (it serialises
    writers until commit). The transaction's change notice will name them."""
    conn = tx.conn
    if naive_allocation and conn.dialect.name == "postgresql":
        top = _allocate_committed_at_once(conn, n)
    else:
        top = conn.execute(_BUMP, {"n": n, "name": "seq"}).scalar_one()
    tx.notes.note_seqs(top)
    return range(top - n + 1, top + 1)


def _allocate_committed_at_once(conn: Connection, n: int) -> int:
    """The naive allocator (tests only): the counter's lock is released at once, so a
    transaction holding a lower seq may commit after one holding a higher seq."""
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "WAYSTATION_UNSAFE_NAIVE_SEQ=1: seqs are allocated without ordering "
            "commits; pulls WILL skip changes (a test setting, never for production)"
        )
    with conn.engine.connect() as other:
        top = int(other.execute(_BUMP, {"n": n, "name": "seq"}).scalar_one())
        other.commit()
    return top


def read_counter(conn: Connection, name: str) -> int:
    return int(
        conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar_one()
    )


def set_counter(conn: Connection, name: str, value: int) -> None:
    conn.execute(sa.update(counters).where(counters.c.name == name).values(value=value))


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def put_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(_UPSERT_META, {"key": key, "value": value})


def get_or_create_meta(conn: Connection, key: str, make: str) -> str:
    """Read ``key``, or store ``make`` under it the first time (in a write transaction).

    Two processes starting at once on a new database agree on one value: the second insert
    waits for the first and does nothing.
    """
    conn.execute(_INSERT_META, {"key": key, "value": make})
    value = get_meta(conn, key)
    assert value is not None
    return value


def advance_hlc(conn: Connection, key: str, hlc: HLC) -> None:
    """Store ``hlc`` under ``key`` unless a later clock is stored there already.

    Every server process writes its clock to the same row; keeping the maximum means a
    process (re)started later never issues a clock below one another process issued. The
    comparison is made in Python: SQL string order depends on the database's collation.
    """
    stored = conn.execute(
        sa.select(meta.c.value).where(meta.c.key == key).with_for_update()
    ).scalar_one_or_none()
    if stored is None:
        if conn.execute(_INSERT_META, {"key": key, "value": str(hlc)}).rowcount == 1:
            return
        stored = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == key).with_for_update()
        ).scalar_one()
    if HLC.parse(stored) < hlc:
        conn.execute(sa.update(meta).where(meta.c.key == key).values(value=str(hlc)))


def new_secret() -> str:
    return secrets.token_urlsafe(48)
