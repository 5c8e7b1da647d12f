"""Prove the replica holds what the server holds (``Replica.verify``), and repair it when
it does not.

The device computes the integrity digest (core/digest.py) over its copy of the server's
state (``server_records``, live records only; never its own unsynced edits) and compares
it, collection by collection, with the server's (``GET /v1/sync/digest``). The two describe
the same feed position when the server's ``cursor`` is the replica's own; when it is not,
the replica pulls and asks again (a few times at most, and only while the pull moves the
cursor: a device whose user lost a scope keeps a cursor the server no longer answers).

A collection that differs (a server copy altered or lost on the device, a record it should
no longer hold) is repaired by a full re-pull (pull.py, ``start_full_repull``): every
record afresh, then the copies the fresh snapshot lacks are dropped. The outbox and the
local edits it overlays are untouched. Then the digests are compared again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from waystation.client.cursor import Cursor
from waystation.client.db import get_meta
from waystation.client.engine import run_sync
from waystation.client.local import LocalReplica
from waystation.client.pull import read_cursor, start_full_repull
from waystation.client.result import LOGIN_ERRORS
from waystation.client.transport import RemoteDigest, Transport
from waystation.core.digest import EMPTY, CollectionDigest, digest_records
from waystation.core.errors import WaystationError

MAX_ATTEMPTS = 3  # digests fetched to find the server at the replica's cursor


class VerifyStatus(enum.StrEnum):
    EQUAL = "equal"  # the device held what the server holds
    REPAIRED = "repaired"  # it did not; a full re-pull made it equal
    DIFFERS = "differs"  # it does not (repair not asked for, or it did not help)


@dataclass(frozen=True, slots=True)
class CollectionCheck:
    """One collection compared: live records on each side and the outcome. The counts are
    those of the last comparison (after a repair, the repaired state)."""

    collection: str
    status: VerifyStatus
    server_count: int
    local_count: int


@dataclass(slots=True)
class VerifyResult:
    """What ``Replica.verify`` found. ``error`` (with ``error_code``, as in ``SyncResult``)
    when it could not finish: offline, server trouble, login needed, another sync running;
    ``checks`` then holds what was compared before that, if anything."""

    checks: list[CollectionCheck] = field(default_factory=list)
    server_cursor: Cursor | None = None
    local_cursor: Cursor | None = None
    repulled: bool = False  # a full re-pull ran
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        """Finished, and every collection is equal (after repair)."""
        return self.error is None and all(
            check.status is not VerifyStatus.DIFFERS for check in self.checks
        )

    @property
    def differs(self) -> list[CollectionCheck]:
        return [check for check in self.checks if check.status is VerifyStatus.DIFFERS]

    @property
    def needs_login(self) -> bool:
        return self.error_code in LOGIN_ERRORS

    def fail(self, code: str, message: str) -> None:
        if self.error is None:
            self.error, self.error_code = message, code


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both sides' digests of the same collections, and the cursors they were read at."""

    remote: RemoteDigest
    local_cursor: Cursor
    local: dict[str, CollectionDigest]

    @property
    def mismatched(self) -> set[str]:
        return {name for name in self.local if self.local[name] != self.remote_of(name)}

    def remote_of(self, name: str) -> CollectionDigest:
        return self.remote.collections.get(name, EMPTY)


def verify_replica(
    local: LocalReplica,
    open_transport: Callable[[], Transport],
    transport: Transport | None = None,
    *,
    repair: bool = True,
    collections: Sequence[str] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> VerifyResult:
    """Sync, compare digests, repair (``repair``) and compare again; never raises for a
    network, server or login failure (the result says what happened). ``collections``
    restricts the comparison (the server refuses unknown names: ``VALIDATION_ERROR``).
    ``transport`` (default: one from ``open_transport``, closed after) stays open."""
    result = VerifyResult()
    own = transport is None
    try:
        if transport is None:
            transport = open_transport()
        _run(local, transport, result, repair, collections, max_attempts)
    except WaystationError as exc:
        result.fail(exc.code, exc.message)
    finally:
        if own and transport is not None:
            transport.close()
    return result


def _run(
    local: LocalReplica,
    transport: Transport,
    result: VerifyResult,
    repair: bool,
    collections: Sequence[str] | None,
    max_attempts: int,
) -> None:
    if not _synced(local, transport, result):
        return
    first = compare(local, transport, collections, result, max_attempts=max_attempts)
    if first is None:
        return
    _record(result, first, first.mismatched, set())
    if not first.mismatched or not repair:
        return
    if not local.sync_lock.acquire():
        result.fail(
            "SYNC_IN_PROGRESS",
            "another sync of this replica is running; verify again once it is done",
        )
        return
    try:
        start_full_repull(local)
    finally:
        local.sync_lock.release()
    result.repulled = True
    if not _synced(local, transport, result):
        return
    second = compare(local, transport, collections, result, max_attempts=max_attempts)
    if second is not None:
        _record(result, second, second.mismatched, first.mismatched)


def _synced(local: LocalReplica, transport: Transport, result: VerifyResult) -> bool:
    """Sync (push, then pull to the end); False, with the reason in ``result``, when the
    sync could not finish."""
    synced = run_sync(local, transport)
    if synced.error is not None:
        result.fail(synced.error_code or "SYNC_FAILED", synced.error)
        return False
    return True


def compare(
    local: LocalReplica,
    transport: Transport,
    collections: Sequence[str] | None,
    result: VerifyResult,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> Comparison | None:
    """The server's digest and the replica's, at the same cursor when the replica can get
    there in ``max_attempts`` digests (it syncs between them, and stops early once a sync
    no longer moves its cursor). None when a sync between them failed (the reason is in
    ``result``); raises the transport's errors."""
    remote = transport.digest(collections)
    for _ in range(max_attempts - 1):
        before = read_cursor(local)
        if remote.cursor == before:
            break
        if not _synced(local, transport, result):
            return None
        if read_cursor(local) == before:
            break  # caught up as far as the feed goes: compare as things are
        remote = transport.digest(collections)
    names = set(remote.collections) if collections is None else set(collections)
    local_cursor, ours = local_digest(local, names, include_others=collections is None)
    return Comparison(remote, local_cursor, ours)


def local_digest(
    local: LocalReplica, names: set[str], *, include_others: bool
) -> tuple[Cursor, dict[str, CollectionDigest]]:
    """The replica's cursor and the digest of its server copies of ``names`` (and, with
    ``include_others``, of any other collection it holds live records of), read in one
    snapshot."""
    with local.db.snapshot() as conn:
        cursor = Cursor(str(get_meta(conn, "cursor", "0")))
        if include_others:
            names = names | {
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT collection FROM server_records WHERE deleted = 0"
                )
            }
        wanted = sorted(names)
        marks = ",".join("?" * len(wanted))
        rows = conn.execute(
            "SELECT collection, id, version, fields FROM server_records"
            f" WHERE deleted = 0 AND collection IN ({marks}) ORDER BY collection, id",
            wanted,
        )
        found = digest_records(((c, i, int(v), orjson.loads(f)) for c, i, v, f in rows), wanted)
    return cursor, found


def _record(
    result: VerifyResult, comparison: Comparison, mismatched: set[str], repaired_from: set[str]
) -> None:
    result.server_cursor = comparison.remote.cursor
    result.local_cursor = comparison.local_cursor
    checks = []
    for name in sorted(comparison.local):
        status = (
            VerifyStatus.DIFFERS
            if name in mismatched
            else VerifyStatus.REPAIRED
            if name in repaired_from
            else VerifyStatus.EQUAL
        )
        checks.append(
            CollectionCheck(
                name, status, comparison.remote_of(name).count, comparison.local[name].count
            )
        )
    result.checks = checks
