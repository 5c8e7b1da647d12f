"""Publishing a committed write's notice (``store/notice.py``) to every listener.

- PostgreSQL: one ``pg_notify(CHANNEL, payload)`` just before COMMIT. PostgreSQL delivers
  it only if the transaction commits, after it is visible, in commit order, to every session
  LISTENing on the channel — every server process on the database.
- SQLite: to the in-process listeners (``LocalListeners``) right after COMMIT, while the
  writer still holds the write lock, so they hear commits in order (one process owns the
  file).

``store/transaction.py`` calls these when it commits; ``store/notify.py`` is the listening
side.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.store.notice import CHANNEL, ChangeNotice, Deliver


def send_before_commit(conn: Connection, notice: ChangeNotice) -> None:
    """PostgreSQL: queue the notice; the server delivers it when (if) the transaction commits."""
    conn.execute(
        sa.text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": notice.payload()},
    )


class LocalListeners:
    """SQLite: who in this process hears of its commits."""

    def __init__(self) -> None:
        self._listeners: list[Deliver] = []

    def add(self, listener: Deliver) -> None:
        """Call ``listener`` with the notice of every write committed by this process (on
        the writer's thread, in commit order)."""
        self._listeners.append(listener)

    def remove(self, listener: Deliver) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def deliver(self, notice: ChangeNotice) -> None:
        """Hand ``notice`` to every listener (call it after COMMIT, under the write lock)."""
        for listener in list(self._listeners):
            listener(notice)
