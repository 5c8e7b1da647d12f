"""One sync step as a plain function: ``sync_once(local, transport) -> SyncResult``.

Push the outbox, then pull the change feed. It never raises for a network, server or login
failure: the result says what happened (``error``, ``error_code``) and the ops wait in the
outbox. Continuous mode (continuous.py) and ``Replica.sync`` wrap it; tests call it
directly and need no sleeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from waystation.client import outbox
from waystation.client.db import get_meta, set_meta
from waystation.client.errors import LoginRequired, Offline
from waystation.client.events import SyncEvent
from waystation.client.local import LocalReplica
from waystation.client.pull import pull_changes, read_cursor
from waystation.client.push import push_outbox
from waystation.client.result import SyncResult
from waystation.client.transport import Transport
from waystation.core.errors import DeviceRevoked, Forbidden, WaystationError
from waystation.core.hlc import wall_ms

log = logging.getLogger("waystation.client")


BATCH_SIZE = 500
# Pull pages as large as the server allows: it clamps ``limit`` to its maximum (protocol.md,
# section 11), and each page costs a round trip and a commit (an fsync) on the device.
PAGE_SIZE = 5000
COLLECTIONS_MAX_AGE_S = 24 * 3600
KEEP_SYNCED = dt.timedelta(days=7)


def run_sync(
    local: LocalReplica,
    transport: Transport,
    *,
    max_items: int | None = None,
    respect_backoff: bool = False,
    batch_size: int = BATCH_SIZE,
    page_size: int = PAGE_SIZE,
) -> SyncResult:
    """Push pending ops (priority, then age; at most ``max_items``), then pull every page.

    With ``respect_backoff`` ops waiting out a retry delay are left for later (continuous
    mode); an explicit sync tries them now. Only one sync of a replica runs at a time; a
    second one returns at once with ``error_code == "SYNC_IN_PROGRESS"``. The transport
    stays open: it belongs to the caller.
    """
    result = SyncResult()
    if not local.sync_lock.acquire():
        result.fail("SYNC_IN_PROGRESS", "another sync of this replica is running")
        return _finish(local, result)
    try:
        _run(local, transport, result, max_items, respect_backoff, batch_size, page_size)
    except LoginRequired as exc:
        result.fail(exc.code, exc.message)
    finally:
        local.sync_lock.release()
    return _finish(local, result)


def sync_without_transport(local: LocalReplica, reason: LoginRequired) -> SyncResult:
    """The result of a sync that could not start (no login, or a server URL the replica
    may not use), recorded and announced (``done``) like any other."""
    result = SyncResult()
    result.fail(reason.code, reason.message)
    return _finish(local, result)


def _run(
    local: LocalReplica,
    transport: Transport,
    result: SyncResult,
    max_items: int | None,
    respect_backoff: bool,
    batch_size: int,
    page_size: int,
) -> None:
    with local.db.transaction() as conn:
        outbox.recover_syncing(conn)
        pushable = outbox.counts(conn)[outbox.OpStatus.PENDING]
    to_push = pushable if max_items is None else min(pushable, max_items)
    local.events.emit(SyncEvent("start", pending=local.pending_count(), to_push=to_push))
    result.cursor = read_cursor(local)
    phases: tuple[Callable[[], None], ...] = (
        lambda: _refresh_collections_quietly(local, transport),
        lambda: push_outbox(
            local,
            transport,
            result,
            max_items=max_items,
            respect_backoff=respect_backoff,
            batch_size=batch_size,
            to_push=to_push,
        ),
        lambda: _pull_when_settled(local, transport, result, page_size),
    )
    for phase in phases:
        try:
            phase()
        except DeviceRevoked as exc:
            _revoked(local, exc)
            result.fail(exc.code, exc.message)
            return
        except (Offline, LoginRequired, Forbidden) as exc:
            result.fail(exc.code, exc.message)
            return
        except WaystationError as exc:
            # The server is up but failed this phase: record it and still try the next one.
            # (After a failed push the pull waits only while ops are in doubt; once they
            # settle or are given up as FAILED, the device receives changes again.)
            result.fail(exc.code, exc.message)
    with local.db.transaction() as conn:
        outbox.prune_synced(conn, dt.datetime.now(dt.UTC) - KEEP_SYNCED)


def _pull_when_settled(
    local: LocalReplica, transport: Transport, result: SyncResult, page_size: int
) -> None:
    """Pull, unless an op whose answer was lost is still unsettled: the pulled copy may
    already contain it, and the overlay would then count it twice. The next sync resends
    it first (the server answers ``duplicate``) and pulls then; nothing is skipped, the
    cursor simply waits."""
    with local.db.read() as conn:
        unsettled = outbox.has_ops_in_doubt(conn)
    if unsettled:
        result.fail(
            "OPS_IN_DOUBT",
            "some ops reached the server without their answer coming back; "
            "the pull waits until the next sync settles them",
        )
        return
    pull_changes(local, transport, result, page_size=page_size)


def refresh_collections(local: LocalReplica, transport: Transport, *, max_age_s: float = 0) -> None:
    """Cache the server's collections (priority, counters, policy) from ``/v1/sync/status``
    and give unsynced ops their collection's priority. Skipped while the cache is younger
    than ``max_age_s``."""
    with local.db.read() as conn:
        fetched = float(get_meta(conn, "collections_fetched_at", 0))
    if max_age_s and time.time() - fetched < max_age_s:
        return
    sent_at = wall_ms()
    status = transport.status()
    received_at = wall_ms()
    collections: dict[str, Any] = {
        str(c["name"]): {
            "priority": int(c.get("priority") or 0),
            "policy": c.get("policy"),
            "counters": list(c.get("counters") or []),
        }
        for c in status.get("collections") or []
        if isinstance(c, dict) and "name" in c
    }
    with local.db.transaction() as conn:
        set_meta(conn, "collections", collections)
        set_meta(conn, "collections_fetched_at", time.time())
        outbox.set_priorities(conn, {k: v["priority"] for k, v in collections.items()})
        if isinstance(status.get("server_hlc"), str):
            # Learn the offset to the server's time before the first offline write.
            local.observe_server(
                conn, status["server_hlc"], sent_at_ms=sent_at, received_at_ms=received_at
            )


def _refresh_collections_quietly(local: LocalReplica, transport: Transport) -> None:
    """Priorities are an optimisation: a server failing ``/status`` must not fail the sync
    (but being offline or logged out still ends it early and cheaply)."""
    try:
        refresh_collections(local, transport, max_age_s=COLLECTIONS_MAX_AGE_S)
    except (Offline, LoginRequired, DeviceRevoked, Forbidden):
        raise
    except WaystationError as exc:
        log.warning("could not refresh collection priorities: %s", exc)


def _revoked(local: LocalReplica, exc: DeviceRevoked) -> None:
    """A revoked device forgets its login; asked to wipe, it forgets everything."""
    if exc.details.get("wipe"):
        local.wipe()
    else:
        local.session.clear_tokens()


def _finish(local: LocalReplica, result: SyncResult) -> SyncResult:
    result.finished_at = dt.datetime.now(dt.UTC)
    if result.error_code != "SYNC_IN_PROGRESS":
        with local.db.transaction() as conn:
            set_meta(conn, "last_sync", result.summary())
            if result.error is None:
                set_meta(conn, "last_sync_at", result.finished_at.isoformat())
    local.events.emit(
        SyncEvent.of_run("done", result, pending=local.pending_count(), error=result.error)
    )
    return result
