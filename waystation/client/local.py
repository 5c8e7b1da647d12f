"""``LocalReplica``: everything of a replica that lives on the device, and nothing that
talks to a server.

The replica file (db), its outbox, its clock, its login (session), its event hub and its
sync lock, held together so the parts that do the work (``engine``, ``push``, ``pull``,
``login``) receive one object and never reach back up to the public ``Replica``, which
wraps this one and adds the network (``link.py``). Calls go one way: Replica -> engine ->
(this, a transport).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from waystation.client import outbox as ob
from waystation.client.backoff import RetryPolicy
from waystation.client.clock import ClockKeeper
from waystation.client.db import LocalDB, get_meta
from waystation.client.events import EventHub
from waystation.client.keys import ReplicaKey
from waystation.client.lock import SyncLock
from waystation.client.outbox import OpStatus
from waystation.client.records import refresh_visible, server_version
from waystation.client.session import Session
from waystation.core.ids import uuid7

_RECORD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_COLLECTION = re.compile(r"[A-Za-z0-9_]{1,64}")


class LocalReplica:
    """The replica's device-side state: one SQLite file and what is kept in it.

    Thread-safe as its parts are: ``LocalDB`` serialises writers, ``EventHub`` and
    ``SyncLock`` lock. ``session`` and ``clock_keeper`` are replaced by ``wipe``: read them
    from here each time rather than keeping them.
    """

    def __init__(
        self,
        path: Path,
        *,
        key: ReplicaKey | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Open (creating when needed) the file. Crash recovery: ops left SYNCING by a sync
        that died go back to PENDING (the server dedupes resends). Raises
        ``ReplicaLocked``, ``ReplicaNotEncrypted`` (db.py)."""
        self.path = path
        self.db = LocalDB(path, key=key)
        self.session = Session(self.db)
        self.events = EventHub()
        self.retry_policy = retry_policy or RetryPolicy()
        self.sync_lock = SyncLock(path)
        self.clock_keeper = ClockKeeper(self.db, self.device_id)
        if self.sync_lock.acquire():
            try:
                with self.db.transaction() as conn:
                    ob.recover_syncing(conn)
            finally:
                self.sync_lock.release()

    @property
    def device_id(self) -> str:
        return self.session.device_id

    def write(self, collection: str, record_id: str, op: str, fields: dict[str, Any]) -> None:
        """Queue one op and refresh the record the app sees, in one transaction (nested in
        the caller's, e.g. ``Replica.atomic``). Raises ValueError for a collection name or
        record id the protocol does not allow."""
        if not isinstance(collection, str) or not _COLLECTION.fullmatch(collection):
            raise ValueError(f"invalid collection name {collection!r}")
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            raise ValueError(f"invalid record id {record_id!r}: use [A-Za-z0-9_.:-]{{1,128}}")
        with self.db.transaction() as conn:
            hlc = self.clock_keeper.stamp(conn)
            ob.enqueue(
                conn,
                op_id=uuid7(),
                collection=collection,
                record_id=record_id,
                op=op,
                fields=fields,
                hlc=str(hlc),
                base_version=server_version(conn, collection, record_id),
                priority=_priority(conn, collection),
            )
            refresh_visible(conn, collection, record_id)

    def pending_count(self) -> int:
        """Ops waiting to reach the server (PENDING or SYNCING)."""
        with self.db.read() as conn:
            found = ob.counts(conn)
        return found[OpStatus.PENDING] + found[OpStatus.SYNCING]

    def observe_server(
        self, conn: sqlite3.Connection, server_hlc: str, *, sent_at_ms: int, received_at_ms: int
    ) -> None:
        """Fold a server answer's clock into ours, in the caller's transaction (clock.py)."""
        self.clock_keeper.observe_server(
            conn, server_hlc, sent_at_ms=sent_at_ms, received_at_ms=received_at_ms
        )

    def wipe(self) -> None:
        """Erase every record, op, token and setting (a revoked device asked to wipe).

        Overwrites freed pages and compacts the file so the data is gone from disk too. The
        replica keeps working as a fresh, logged-out one with a new device id.
        """
        with self.db.read() as conn:
            conn.execute("PRAGMA secure_delete=ON")
        with self.db.transaction() as conn:
            for table in ("records", "server_records", "outbox", "meta"):
                conn.execute(f"DELETE FROM {table}")
        with self.db.read() as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.session = Session(self.db)
        self.clock_keeper = ClockKeeper(self.db, self.device_id)

    def close(self) -> None:
        self.db.close()


def _priority(conn: sqlite3.Connection, collection: str) -> int:
    """The collection's push priority, as last fetched from the server (engine.py)."""
    info = (get_meta(conn, "collections") or {}).get(collection) or {}
    return int(info.get("priority") or 0)
