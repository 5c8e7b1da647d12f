"""The pull half of a sync: every page of the change feed since the cursor, into the replica.

Each page is applied and the cursor saved in one transaction, so memory stays flat and a
crash resumes from the last page applied. Pulled changes replace the server's copy only;
unsynced local ops are replayed on top (overlay.py), so a pull never loses a pending edit.

``CURSOR_EXPIRED`` starts a full re-pull under a new *generation*: every record the fresh
snapshot delivers is stamped with it, and once the last page is in, server copies of older
generations are dropped — those are deletes the replica missed while its cursor was too old.
Pending ops are kept throughout. The generation lives in meta, so a crash mid-re-pull
resumes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from waystation.client.cursor import Cursor
from waystation.client.db import get_meta, set_meta
from waystation.client.events import SyncEvent
from waystation.client.records import drop_older_generations, store_pulled
from waystation.client.result import SyncResult
from waystation.client.transport import Transport
from waystation.core.errors import CursorExpired

if TYPE_CHECKING:
    from waystation.client.replica import Replica


def read_cursor(replica: Replica) -> Cursor:
    with replica.db.read() as conn:
        return Cursor(str(get_meta(conn, "cursor", "0")))


def pull_changes(
    replica: Replica, transport: Transport, result: SyncResult, *, page_size: int
) -> None:
    """Pull until ``has_more`` is false (or the server answers 304); raises the transport's
    error, leaving every page applied so far in place."""
    restarted = False
    while True:
        with replica.db.read() as conn:
            cursor = Cursor(str(get_meta(conn, "cursor", "0")))
            etag_of = get_meta(conn, "pull_etag") or {}
            generation = int(get_meta(conn, "generation", 0))
        etag = etag_of.get("etag") if etag_of.get("since") == str(cursor) else None
        try:
            page = transport.pull(cursor, limit=page_size, etag=etag)
        except CursorExpired:
            if restarted or cursor.is_start:
                raise
            _start_full_repull(replica, generation + 1)
            restarted = True
            continue
        result.bytes_sent += page.bytes_sent
        result.bytes_received += page.bytes_received
        result.cursor = page.cursor
        if page.not_modified:
            break
        with replica.db.transaction() as conn:
            for change in page.changes:
                store_pulled(conn, change, generation)
            set_meta(conn, "cursor", str(page.cursor))
            set_meta(conn, "pull_etag", {"since": str(cursor), "etag": page.etag})
        result.pulled += len(page.changes)
        replica.events.emit(SyncEvent.of_run("pull", result, pending=replica.pending_count()))
        if not page.has_more:
            break
    _finish_full_repull(replica)


def _start_full_repull(replica: Replica, generation: int) -> None:
    with replica.db.transaction() as conn:
        set_meta(conn, "generation", generation)
        set_meta(conn, "repull_active", True)
        set_meta(conn, "cursor", "0")
        set_meta(conn, "pull_etag", None)


def _finish_full_repull(replica: Replica) -> None:
    with replica.db.transaction() as conn:
        if not get_meta(conn, "repull_active", False):
            return
        drop_older_generations(conn, int(get_meta(conn, "generation", 0)))
        set_meta(conn, "repull_active", None)
