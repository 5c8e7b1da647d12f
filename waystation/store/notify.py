"""Hearing of committed changes: every server process hears of every commit.

``NoticeSource`` is the listening side (``start(deliver)``, ``close()``): ``LocalSource``
for SQLite (the process's own commits, ``store/publish.py``), ``PostgresSource`` (a thread
with its own LISTEN connection, reconnecting) for PostgreSQL. A notice
(``store/notice.py``) is a hint to pull, never data: a listener that may have missed
notices (a dropped LISTEN connection) is given a notice that says "anything may have
changed", and re-checks with ``newest_change``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal
from waystation.store.database import Database
from waystation.store.notice import ANYTHING, CHANNEL, ChangeNotice, Deliver
from waystation.store.publish import LocalListeners
from waystation.store.tables import record_scopes, records

# The server's broadcaster imports the notice and its delivery type from here, with the
# sources that produce them.
__all__ = [
    "ChangeNotice",
    "Deliver",
    "LocalSource",
    "NoticeSource",
    "PostgresSource",
    "newest_change",
    "source_for",
]

log = logging.getLogger("waystation.notify")


class NoticeSource(Protocol):
    """Where a server process hears of committed changes."""

    def start(self, deliver: Deliver) -> None:
        """Call ``deliver`` (from any thread) for every notice from now on."""
        ...

    def close(self) -> None:
        """Stop delivering; idempotent."""
        ...


class LocalSource:
    """SQLite: the notices of this process's own commits."""

    def __init__(self, listeners: LocalListeners) -> None:
        self.listeners = listeners
        self._deliver: Deliver | None = None

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.listeners.add(deliver)

    def close(self) -> None:
        if self._deliver is not None:
            self.listeners.remove(self._deliver)
            self._deliver = None


class PostgresSource:
    """PostgreSQL: a thread holding one ``LISTEN`` connection (outside the pool).

    Each time LISTEN takes effect (at start, and after reconnecting with backoff when the
    connection dropped) it delivers ``ANYTHING``: notices sent before were not heard, so
    every listener re-checks the database once.
    """

    POLL_S = 0.5

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self, deliver: Deliver) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(deliver,), name="waystation-listen", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, deliver: Deliver) -> None:
        import psycopg  # only a PostgreSQL deployment needs the driver

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, application_name="waystation-listen"
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    deliver(ANYTHING)
                    backoff = 0.2
                    while not self._stop.is_set():
                        for item in conn.notifies(timeout=self.POLL_S):
                            deliver(ChangeNotice.parse(item.payload))
            except psycopg.Error as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.warning(
                    "change notifications: LISTEN connection lost (%s); reconnecting in %.1fs",
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def source_for(db: Database) -> NoticeSource:
    """The notice source that fits the database's engine."""
    if db.is_sqlite:
        return LocalSource(db.listeners)
    url = db.engine.url.set(drivername="postgresql")
    return PostgresSource(url.render_as_string(hide_password=False))


# -- what a listener re-checks -----------------------------------------------------------


def newest_change(
    conn: Connection, principal: Principal, after: int, collections: Sequence[str] | None = None
) -> int:
    """The highest seq above ``after`` that a pull by ``principal`` would return (0: none).

    Reads the same indexes as a pull: ``records (seq)`` for an admin, ``record_scopes
    (scope, seq)`` for everyone else.
    """
    if principal.is_admin:
        query = sa.select(sa.func.max(records.c.seq)).where(records.c.seq > after)
        if collections:
            query = query.where(records.c.collection.in_(collections))
    else:
        query = sa.select(sa.func.max(record_scopes.c.seq)).where(
            record_scopes.c.scope.in_(sorted(principal.readable_scopes())),
            record_scopes.c.seq > after,
        )
        if collections:
            query = query.where(record_scopes.c.collection.in_(collections))
    return int(conn.execute(query).scalar_one_or_none() or 0)
