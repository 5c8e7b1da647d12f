"""The replica's SQLite file: connection settings, named migrations, transactions, meta.

One connection per replica, shared by the app's threads and the sync engine under one
re-entrant lock (SQLite has one writer anyway), plus a read-only side connection for the
few reads that must not wait for another thread's write transaction (``read_committed``).
WAL lets readers run beside the writer; ``synchronous=FULL`` makes every committed write
survive a power cut, which is what lets the outbox promise "nothing lost". Every write
happens inside ``transaction()`` (``BEGIN IMMEDIATE``), so a local write and its outbox row
commit together or not at all.

Given a ``ReplicaKey``, the file is a SQLCipher database and every connection (the main
one and the side one) is keyed (cipher.py); without one it is plain SQLite.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from waystation.client.cipher import connect, keying_for
from waystation.client.keys import ReplicaKey

SQLITE_PAGE_BYTES = 16384
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

        -- The server's copy of each record, exactly as the last pull delivered it.
        CREATE TABLE server_records (
            collection TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            seq TEXT NOT NULL,
            deleted INTEGER NOT NULL,
            fields TEXT NOT NULL,
            clocks TEXT NOT NULL,
            conflict INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT,
            deleted_hlc TEXT,
            generation INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (collection, id)
        ) WITHOUT ROWID;
        CREATE INDEX server_records_generation ON server_records (generation);

        -- What the app sees: server copy + unsynced local ops, kept up to date on every
        -- write, push answer and pull page (see overlay.py).
        CREATE TABLE records (
            collection TEXT NOT NULL,
            id TEXT NOT NULL,
            fields TEXT NOT NULL,
            PRIMARY KEY (collection, id)
        ) WITHOUT ROWID;

        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            op_id TEXT NOT NULL UNIQUE,
            collection TEXT NOT NULL,
            record_id TEXT NOT NULL,
            op TEXT NOT NULL,
            fields TEXT NOT NULL,
            hlc TEXT NOT NULL,
            base_version INTEGER NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'PENDING',
            retry_count INTEGER NOT NULL DEFAULT 0,
            -- 1 once the op may have reached the server without its answer reaching us.
            in_doubt INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            acked_at TEXT,
            result_version INTEGER,
            superseded TEXT,
            conflict_id TEXT
        );
        CREATE INDEX outbox_push ON outbox (status, priority DESC, seq);
        CREATE INDEX outbox_record ON outbox (collection, record_id, seq);
        """,
    ),
    (
        # Every pulled record paid an index write for a scan needed once, at the end of a
        # rare full re-pull (records.drop_older_generations walks the primary key instead).
        "0002_no_generation_index",
        "DROP INDEX IF EXISTS server_records_generation",
    ),
)


class LocalDB:
    """The replica file: one connection, one lock, explicit transactions."""

    def __init__(self, path: str | Path, *, key: ReplicaKey | None = None) -> None:
        """Open (creating when needed) the replica file; with ``key``, an encrypted one.

        Raises ``ReplicaLocked`` (encrypted but no key, or a wrong one) and
        ``ReplicaNotEncrypted`` (a key for a plain file).
        """
        self.path = Path(path)
        created = not self.path.exists()
        self._keying = keying_for(self.path, key)
        self.encrypted = self._keying is not None
        self._conn = connect(self.path, self._keying, rows=True)
        if created and os.name == "posix":
            # Health data: only the owner of the replica may read it.
            os.chmod(self.path, 0o600)
        self._lock = threading.RLock()
        self._depth = 0
        self._side: sqlite3.Connection | None = None
        self._side_lock = threading.Lock()
        if self._conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # A new file: larger pages than SQLite's 4 KiB suit rows of ~1 KB (a server copy
            # with its clocks): writing a first pull of 100k records takes ~20% less CPU
            # (fewer B-tree splits and WAL frames). Only settable before the first table.
            self._conn.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ'))", (name,)
                )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls become savepoints.

        Commits when the block ends, rolls back (and re-raises) when it raises.
        """
        with self._lock:
            if self._depth == 0:
                self._conn.execute("BEGIN IMMEDIATE")
                begin, commit, rollback = "", "COMMIT", "ROLLBACK"
            else:
                name = f"sp{self._depth}"
                self._conn.execute(f"SAVEPOINT {name}")
                begin, commit, rollback = name, f"RELEASE {name}", f"ROLLBACK TO {name}"
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    self._conn.execute(rollback)
                    if begin:
                        self._conn.execute(f"RELEASE {begin}")
                raise
            self._depth -= 1
            self._conn.execute(commit)

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for single-statement reads, held under the lock."""
        with self._lock:
            yield self._conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one consistent state (a deferred read transaction, which
        never blocks a writer in another process)."""
        with self._lock:
            if self._depth:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def read_committed(self) -> Iterator[sqlite3.Connection]:
        """A connection for single-statement reads of committed data that never waits for
        another thread's transaction.

        The main connection when it is free or held by this thread (which then sees its own
        uncommitted writes, as with ``read``); otherwise a read-only side connection, which
        WAL lets read the last commit while the other thread writes. Used for the device's
        tokens: the pull fetches page n+1 on a helper thread while the syncing thread holds
        the write transaction of page n, and must not wait for that commit to send.
        """
        if self._lock.acquire(blocking=False):
            try:
                yield self._conn
            finally:
                self._lock.release()
            return
        with self._side_lock:
            if self._side is None:
                self._side = connect(self.path, self._keying)
                self._side.execute("PRAGMA query_only=ON")
            yield self._side

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        with self._side_lock:
            if self._side is not None:
                self._side.close()
                self._side = None


def get_meta(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else orjson.loads(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Store a JSON value (``None`` removes the key)."""
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, orjson.dumps(value).decode()),
        )
