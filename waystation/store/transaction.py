"""A write transaction: its connection, the notes of what its changes will announce, and
how one is opened and committed on each engine.

Code that allocates seqs (``store/sequence.py``) and describes the changes that take them
(``store/write_plan.py``, ``store/conflicts.py``) notes them on the ``Transaction`` it was
handed; at commit the notes become the transaction's notice (``store/notice.py``), published
by ``store/publish.py``. A savepoint rolled back takes its notes with it
(``store/group_commit.py``).

SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (taking the write lock up
front, so two writers never deadlock upgrading a read lock), under a lock of the process
(SQLite has one writer anyway; queueing in Python is cheaper than busy-waiting).
PostgreSQL: the engine's own BEGIN, in the isolation level the engine was made with.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Engine

from waystation.store.notice import ChangeNotice
from waystation.store.publish import LocalListeners, send_before_commit


@dataclass(slots=True)
class ChangeNotes:
    """What a write transaction's changes will announce: the newest seq it allocated and
    the collections and scopes of the changes that took seqs."""

    top_seq: int = 0
    collections: set[str] | None = None
    scopes: set[str] | None = None
    # False while seqs were allocated that no note_changes described yet
    described: bool = False

    def note_seqs(self, top: int) -> None:
        """Seqs up to ``top`` were allocated (``allocate_seqs`` calls it). Until
        ``note_changes`` describes them, the notice names no collection or scope."""
        self.top_seq = max(self.top_seq, top)
        self.described = False

    def note_changes(self, collections: Iterable[str], scopes: Iterable[str]) -> None:
        """Describe the changes whose seqs were just allocated."""
        if self.collections is None:
            self.collections = set()
        if self.scopes is None:
            self.scopes = set()
        self.collections.update(collections)
        self.scopes.update(scopes)
        self.described = True

    def copy(self) -> ChangeNotes:
        return ChangeNotes(
            self.top_seq,
            set(self.collections) if self.collections is not None else None,
            set(self.scopes) if self.scopes is not None else None,
            self.described,
        )

    def notice(self) -> ChangeNotice | None:
        """The notice to publish at commit (None when no seq was allocated)."""
        if self.top_seq == 0:
            return None
        if not self.described or self.collections is None or self.scopes is None:
            return ChangeNotice(self.top_seq)
        return ChangeNotice(self.top_seq, frozenset(self.collections), frozenset(self.scopes))


@dataclass(slots=True)
class Transaction:
    """An open write transaction: run SQL on ``conn``, note changes on ``notes``."""

    conn: Connection
    notes: ChangeNotes = field(default_factory=ChangeNotes)


@contextmanager
def begin_sqlite(
    engine: Engine, lock: threading.Lock, listeners: LocalListeners
) -> Iterator[Transaction]:
    """A SQLite write transaction: committed on success, rolled back on any exception;
    once committed, its notice goes to ``listeners`` (still under ``lock``: they hear
    commits in order)."""
    with lock, engine.connect() as conn:
        tx = Transaction(conn)
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield tx
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        notice = tx.notes.notice()
        if notice is not None:
            listeners.deliver(notice)


@contextmanager
def begin_postgres(engine: Engine) -> Iterator[Transaction]:
    """A PostgreSQL write transaction: committed on success, rolled back on any exception;
    its notice is queued just before COMMIT (delivered only if it commits)."""
    with engine.begin() as conn:
        tx = Transaction(conn)
        yield tx
        notice = tx.notes.notice()
        if notice is not None:
            send_before_commit(conn, notice)
