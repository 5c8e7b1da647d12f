"""The engine and its transactions: SQLite pragmas, one writer, explicit BEGIN IMMEDIATE.

SQLite: WAL with ``synchronous=FULL`` so an acknowledged write survives a power cut; every
write transaction starts with ``BEGIN IMMEDIATE`` under a lock of the process
(``store/transaction.py``), and write work that arrives together shares one COMMIT
(``store/group_commit.py``).

PostgreSQL (psycopg 3): a pool of connections per process; writes run in READ COMMITTED
(a ``SELECT ... FOR UPDATE`` that waited for another writer then sees its committed row),
reads in a read-only REPEATABLE READ transaction (one snapshot for all their statements).
Several writers run at once, so a write can lose a race that SQLite's single writer rules
out: two transactions creating the same record, claiming the same unique key or logging the
same op id. The loser hits a real unique index; ``transact()`` rolls it back and runs it
again, and the second run sees the winner's row (see ``store/push.py``). The ordering of
the change sequence is handled where it is allocated (``store/sequence.py``).

Both engines announce the changes a write transaction made: the work of ``transact`` notes
them on the ``Transaction`` it is handed, and the notice is published at commit
(``store/transaction.py``, ``store/publish.py``).

A new SQLite database file is created readable by its owner only (it holds every record and
the token signing key); SQLite gives its WAL and SHM files the same mode.
"""

from __future__ import annotations

import logging
import os
import random
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from waystation.store.group_commit import GroupCommit
from waystation.store.publish import LocalListeners
from waystation.store.transaction import Transaction, begin_postgres, begin_sqlite

log = logging.getLogger("waystation.store")
T = TypeVar("T")

# SQLSTATEs of races that a fresh run of the same transaction resolves.
_RETRYABLE_SQLSTATES = {
    "23505",  # unique_violation: another writer created the row first
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
}
WRITE_ATTEMPTS = 5
SQLITE_MMAP_BYTES = 1 << 30


def normalise_url(db: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (SQLite); return a SQLAlchemy URL.

    ``postgresql://`` URLs use the psycopg (v3) driver.
    """
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    if db.startswith("postgresql://") or db.startswith("postgres://"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db


class Database:
    """An engine plus the transaction discipline every store module follows."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.Lock()
        # SQLite: who in this process hears of its commits (store/notify.py, LocalSource)
        self.listeners = LocalListeners()
        # Write transactions run again after a lost race, by SQLSTATE (observability).
        self.lost_races: Counter[str] = Counter()
        if self.is_sqlite:
            _create_private_sqlite_file(self.url)
            self.engine = sa.create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            _install_sqlite_pragmas(self.engine)
        else:
            self.engine = sa.create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED",
            )
        # Opens a write transaction (store/transaction.py): a function of the engine, so
        # that the group commit (SQLite) is handed how to begin and nothing of Database.
        self._begin: Callable[[], AbstractContextManager[Transaction]] = (
            partial(begin_sqlite, self.engine, self._write_lock, self.listeners)
            if self.is_sqlite
            else partial(begin_postgres, self.engine)
        )
        self._group_commit = GroupCommit(self._begin)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction for what is no change to records (accounts, settings,
        migrations): committed on success, rolled back on any exception. It announces
        nothing; changes to records go through ``transact``, whose work notes them."""
        with self._begin() as tx:
            yield tx.conn

    def transact(self, work: Callable[[Transaction], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
        """Run ``work`` in a write transaction; the changes it notes on the ``Transaction``
        are announced once committed. On SQLite, perhaps one shared with other
        callers' work (``store/group_commit.py``); on PostgreSQL, run it again (up to
        ``attempts`` times in all) when it lost a race to a concurrent writer (a unique
        index, a deadlock or a serialization failure). ``work`` must have no effects outside
        the transaction that a second run would repeat wrongly.

        Raises the last error when every attempt lost (or at once for any other error).
        """
        if self.is_sqlite:  # one writer, no races to lose: share COMMITs instead
            return self._group_commit.run(work)
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._begin() as tx:
                    return work(tx)
            except exc.DBAPIError as error:
                if attempt >= attempts or not _lost_race(error):
                    raise
                self.lost_races[_sqlstate(error) or "?"] += 1
                log.info(
                    "write transaction lost a race (%s); running it again (attempt %d)",
                    _sqlstate(error),
                    attempt + 1,
                )
                time.sleep(random.uniform(0, 0.002 * attempt))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (one consistent snapshot on both engines)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN")
            else:
                conn = conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            try:
                yield conn
            finally:
                conn.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


def _create_private_sqlite_file(url: str) -> None:
    """Create the database file of ``url`` with mode 0600 before SQLite opens it (SQLite
    would make it, and then its WAL and SHM files, readable by everyone the umask lets).
    An existing file keeps its mode; one that others may read gets a warning."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            log.warning(
                "the database %s is readable by other users (mode %o) but holds "
                "every record and the token signing key: chmod 600 it and its -wal "
                "and -shm files",
                path,
                mode,
            )
    except FileNotFoundError:
        pass  # no such directory: SQLite says so when it opens the file


def _sqlstate(error: exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _lost_race(error: exc.DBAPIError) -> bool:
    return _sqlstate(error) in _RETRYABLE_SQLSTATES


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions would defer the lock).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # Reads through the OS page cache instead of copying into SQLite's own 2 MiB cache,
        # which a pull of a large feed otherwise re-reads page by page (the fetch of a pull
        # page took half the CPU when measured). Address space, not memory: the kernel
        # shares and evicts the mapped pages.
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cur.close()
