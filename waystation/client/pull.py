"""The pull half of a sync: every page of the change feed since the cursor, into the local.

Each page is applied and the cursor saved in one transaction, so memory stays flat and a
crash resumes from the last page applied. Pulled changes replace the server's copy only;
unsynced local ops are replayed on top (overlay.py), so a pull never loses a pending edit.

While page n is applied, page n+1 is already being fetched on a helper thread (one pull in
flight at most, so a transport never sees two pulls at once): the network and the server's
work overlap the local writes instead of alternating with them. Prefetching
changes nothing about what is committed: pages are applied strictly in order, on the
syncing thread, and the cursor saved with a page is the one its own records lead to.

``CURSOR_EXPIRED`` starts a full re-pull under a new *generation*: every record the fresh
snapshot delivers is stamped with it, and once the last page is in, server copies of older
generations are dropped — those are deletes the replica missed while its cursor was too old.
Pending ops are kept throughout. The generation lives in meta, so a crash mid-re-pull
resumes it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from waystation.client.cursor import Cursor
from waystation.client.db import get_meta, set_meta
from waystation.client.events import SyncEvent
from waystation.client.local import LocalReplica
from waystation.client.records import (
    drop_older_generations,
    forget_synced_without_copy,
    server_rows,
    store_server_rows,
)
from waystation.client.result import SyncResult
from waystation.client.transport import Transport
from waystation.core.errors import CursorExpired


def read_cursor(local: LocalReplica) -> Cursor:
    with local.db.read() as conn:
        return Cursor(str(get_meta(conn, "cursor", "0")))


def pull_changes(
    local: LocalReplica, transport: Transport, result: SyncResult, *, page_size: int
) -> None:
    """Pull until ``has_more`` is false (or the server answers 304); raises the transport's
    error, leaving every page applied so far in place (and no request still running)."""
    restarted = False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="waystation-pull") as fetcher:
        since, etag, generation = _position(local)
        coming = fetcher.submit(transport.pull, since, limit=page_size, etag=etag)
        while True:
            try:
                page = coming.result()
            except CursorExpired:
                if restarted or since.is_start:
                    raise
                _start_full_repull(local, generation + 1)
                restarted = True
                since, etag, generation = _position(local)
                coming = fetcher.submit(transport.pull, since, limit=page_size, etag=etag)
                continue
            result.bytes_sent += page.bytes_sent
            result.bytes_received += page.bytes_received
            result.cursor = page.cursor
            if page.not_modified:
                break
            if page.has_more:
                # No ETag: one only ever matches a page already applied (meta pull_etag).
                coming = fetcher.submit(transport.pull, page.cursor, limit=page_size)
            # Rows to store, then the parsed page is let go: while this page is written and
            # the next one parsed, only one parsed page is held.
            rows = server_rows(page.changes, generation)
            page = replace(page, changes=[])
            with local.db.transaction() as conn:
                store_server_rows(conn, rows)
                set_meta(conn, "cursor", str(page.cursor))
                set_meta(conn, "pull_etag", {"since": str(since), "etag": page.etag})
            result.pulled += len(rows)
            del rows
            local.events.emit(SyncEvent.of_run("pull", result, pending=local.pending_count()))
            if not page.has_more:
                break
            since = page.cursor
    _finish_full_repull(local)


def _position(local: LocalReplica) -> tuple[Cursor, str | None, int]:
    """Where the committed pull stands: cursor, the ETag of the page that led there (when
    that page is still the answer, the server says 304), and the re-pull generation."""
    with local.db.snapshot() as conn:
        cursor = Cursor(str(get_meta(conn, "cursor", "0")))
        etag_of = get_meta(conn, "pull_etag") or {}
        generation = int(get_meta(conn, "generation", 0))
    etag = etag_of.get("etag") if etag_of.get("since") == str(cursor) else None
    return cursor, etag, generation


def start_full_repull(local: LocalReplica) -> None:
    """Make the next sync pull everything afresh and then drop what the fresh snapshot
    lacks (pending ops are kept): for a replica whose user lost scopes, which the change
    feed would never tell it about."""
    with local.db.read() as conn:
        generation = int(get_meta(conn, "generation", 0))
    _start_full_repull(local, generation + 1)


def _start_full_repull(local: LocalReplica, generation: int) -> None:
    with local.db.transaction() as conn:
        set_meta(conn, "generation", generation)
        set_meta(conn, "repull_active", True)
        set_meta(conn, "cursor", "0")
        set_meta(conn, "pull_etag", None)


def _finish_full_repull(local: LocalReplica) -> None:
    with local.db.transaction() as conn:
        if not get_meta(conn, "repull_active", False):
            return
        drop_older_generations(conn, int(get_meta(conn, "generation", 0)))
        forget_synced_without_copy(conn)
        set_meta(conn, "repull_active", None)
