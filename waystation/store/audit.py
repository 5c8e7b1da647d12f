"""The audit trail: append hash-chained entries, list them by filter, verify the chain.

Entries are numbered 1, 2, 3, ... by the appending transaction, which first locks the
chain's head (``meta['audit_head']``: the count and the hash of the last entry; ``SELECT
... FOR UPDATE`` on PostgreSQL, where several server processes append at once; SQLite has
one writer). The head stays locked until COMMIT, so appends are serialised across
processes, id order is chain order, and no two entries ever follow the same one. The head
is the last lock a transaction takes (after records, ``counters['seq']`` and the device
row of a push: store/sequence.py), so appending never deadlocks with a write.

``verify`` walks the chain in id order and names the first entry that is missing
(deleted), does not link to its predecessor (inserted, replaced, or its predecessor
rewritten with a recomputed hash) or does not match its own hash (edited), then checks
that the head matches the last entry (a truncated tail). What it cannot see: someone with
write access to the database rewriting the tail *and* the head consistently. Against that,
an operator keeps ``ChainHead``s elsewhere (``waystation audit head``) and verifies against
them (``verify(anchor=...)``). The entry's hash covers its scopes (audit_scopes rows).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.audit import GENESIS_HASH, AuditEvent, encode_details, entry_hash
from waystation.core.timefmt import rfc3339
from waystation.store import bulk
from waystation.store.tables import audit_log, audit_scopes, meta, record_scopes

HEAD_KEY = "audit_head"
_INSERT_SCOPE = "INSERT INTO audit_scopes (audit_id, scope) VALUES (?, ?)"
VERIFY_BATCH = 1000
_HASH = re.compile(r"[0-9a-f]{64}")


class BrokenChain(Exception):
    """The chain's head is missing or unreadable: the trail was tampered with in the
    database. Appending refuses to go on (run ``waystation audit verify``)."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """How many entries the chain holds and the hash of the last one (``GENESIS_HASH``
    when empty). Its text form ``<count>:<hash>`` is what ``waystation audit head``
    prints and ``verify --head`` takes."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> ChainHead:
        """Raises ValueError for anything but ``<count>:<64 hex digits>``."""
        count, sep, digest = text.strip().partition(":")
        if not sep or not count.isdigit() or not _HASH.fullmatch(digest):
            raise ValueError(
                f"{text!r} is not a chain head: expected <count>:<sha-256 hex>, "
                "as `waystation audit head` prints it"
            )
        return cls(int(count), digest)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of ``verify``: ``ok``, how many entries were checked, the head stored in
    the database, and for a broken chain the first bad entry's id (None when the fault is
    not one entry's, such as a missing head) and what is wrong with it."""

    ok: bool
    checked: int
    head: ChainHead | None
    bad_id: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to list: by actor, device, scope of the records concerned, action,
    and time (``since_ms`` <= at < ``until_ms``). None matches everything."""

    user_id: str | None = None
    device_id: str | None = None
    scope: str | None = None
    action: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[dict[str, Any]]
    has_more: bool


# -- append ----------------------------------------------------------------------------


def append(conn: Connection, event: AuditEvent, *, now: int) -> int:
    """Append ``event`` as the next entry in the caller's write transaction; returns its id.

    Locks the head until the transaction ends: call it after every other lock the
    transaction takes. Raises BrokenChain when the head is missing or unreadable.
    """
    event = replace(event, scopes=tuple(sorted(set(event.scopes))))
    head = _locked_head(conn)
    entry_id = head.count + 1
    digest = entry_hash(head.hash, entry_id, now, event)
    conn.execute(
        sa.insert(audit_log).values(
            id=entry_id,
            at=now,
            action=event.action,
            actor_user_id=event.actor_user_id,
            actor_device_id=event.actor_device_id,
            client_address=event.client_address,
            outcome=event.outcome,
            target=event.target,
            details=encode_details(event.details),
            prev_hash=head.hash,
            hash=digest,
        )
    )
    # a pulled page may name thousands: the driver's executemany (COPY on PostgreSQL)
    bulk.executemany(conn, _INSERT_SCOPE, [(entry_id, scope) for scope in event.scopes])
    conn.execute(
        sa.update(meta).where(meta.c.key == HEAD_KEY).values(value=str(ChainHead(entry_id, digest)))
    )
    return entry_id


def _locked_head(conn: Connection) -> ChainHead:
    value = conn.execute(
        sa.select(meta.c.value).where(meta.c.key == HEAD_KEY).with_for_update()
    ).scalar_one_or_none()
    if value is None:
        raise BrokenChain(
            "the audit chain's head is missing from the database; run `waystation audit verify`"
        )
    try:
        return ChainHead.parse(value)
    except ValueError:
        raise BrokenChain(
            f"the audit chain's head {value!r} is unreadable; run `waystation audit verify`"
        ) from None


def read_head(conn: Connection) -> ChainHead | None:
    """The head as stored (None when missing or unreadable)."""
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == HEAD_KEY)).scalar_one_or_none()
    try:
        return ChainHead.parse(value) if value is not None else None
    except ValueError:
        return None


def stored_scopes(conn: Connection, collection: str, record_ids: Iterable[str]) -> set[str]:
    """The scopes of these records as the store indexes them (``record_scopes``)."""
    ids = sorted(set(record_ids))
    if not ids:
        return set()
    return set(
        conn.execute(
            sa.select(record_scopes.c.scope).where(
                record_scopes.c.collection == collection, record_scopes.c.record_id.in_(ids)
            )
        ).scalars()
    )


# -- list ------------------------------------------------------------------------------


def list_entries(
    conn: Connection, filters: AuditFilter, *, after: int = 0, limit: int = 100
) -> AuditPage:
    """Entries matching ``filters`` with an id above ``after``, oldest first, at most
    ``limit``; ``has_more`` when more follow."""
    query = sa.select(audit_log).where(audit_log.c.id > after)
    if filters.user_id is not None:
        query = query.where(audit_log.c.actor_user_id == filters.user_id)
    if filters.device_id is not None:
        query = query.where(audit_log.c.actor_device_id == filters.device_id)
    if filters.action is not None:
        query = query.where(audit_log.c.action == filters.action)
    if filters.since_ms is not None:
        query = query.where(audit_log.c.at >= filters.since_ms)
    if filters.until_ms is not None:
        query = query.where(audit_log.c.at < filters.until_ms)
    if filters.scope is not None:
        query = query.where(
            audit_log.c.id.in_(
                sa.select(audit_scopes.c.audit_id).where(
                    audit_scopes.c.scope == filters.scope, audit_scopes.c.audit_id > after
                )
            )
        )
    rows = conn.execute(query.order_by(audit_log.c.id).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    scopes = _scopes_of(conn, [row.id for row in rows])
    return AuditPage([_entry(row, scopes.get(row.id, [])) for row in rows], has_more)


def _scopes_of(conn: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if ids:
        query = (
            sa.select(audit_scopes.c.audit_id, audit_scopes.c.scope)
            .where(audit_scopes.c.audit_id.in_(ids))
            .order_by(audit_scopes.c.audit_id, audit_scopes.c.scope)
        )
        for audit_id, scope in conn.execute(query):
            found[audit_id].append(scope)
    return found


def _entry(row: Any, scopes: list[str]) -> dict[str, Any]:
    """An entry as the API and the CLI show it (ids as strings, as seqs are)."""
    return {
        "id": str(row.id),
        "at": rfc3339(row.at),
        "action": row.action,
        "user_id": row.actor_user_id,
        "device_id": row.actor_device_id,
        "client_address": row.client_address,
        "outcome": row.outcome,
        "target": row.target,
        "details": orjson.loads(row.details),
        "scopes": scopes,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


# -- verify ----------------------------------------------------------------------------


def verify(conn: Connection, anchor: ChainHead | None = None) -> Verification:
    """Walk the chain (in one snapshot: run it in a read transaction); see the module
    docstring for what it detects. ``anchor``, a head kept elsewhere, must name an entry
    of this chain with the same hash."""
    stored = read_head(conn)
    prev, expected = GENESIS_HASH, 1
    if anchor is not None and anchor.count == 0 and anchor.hash != GENESIS_HASH:
        return Verification(
            False,
            0,
            stored,
            None,
            f"{anchor} is not the head of any trail (0 entries end in {GENESIS_HASH[:12]}…)",
        )
    while True:
        rows = conn.execute(
            sa.select(audit_log)
            .where(audit_log.c.id >= expected)
            .order_by(audit_log.c.id)
            .limit(VERIFY_BATCH)
        ).all()
        if not rows:
            break
        scopes = _scope_range(conn, rows[0].id, rows[-1].id)
        for row in rows:
            problem = _check(row, expected, prev, scopes.get(row.id, ()))
            if (
                problem is None
                and anchor is not None
                and row.id == anchor.count
                and row.hash != anchor.hash
            ):
                problem = (
                    f"entry {row.id}'s hash is {row.hash[:12]}…, but the head kept "
                    f"elsewhere ({_short(anchor)}) says {anchor.hash[:12]}…: the "
                    f"trail was rewritten at entry {row.id} or before"
                )
            if problem is not None:
                return Verification(False, expected - 1, stored, expected, problem)
            prev, expected = row.hash, expected + 1
    count = expected - 1
    end = ChainHead(count, prev)
    if anchor is not None and anchor.count > count:
        return Verification(
            False,
            count,
            stored,
            count + 1,
            f"the head kept elsewhere ({_short(anchor)}) names entry "
            f"{anchor.count}, but the trail ends at entry {count}: entries "
            f"from {count + 1} on were deleted (and the head in the "
            "database altered to match)",
        )
    if stored is None:
        return Verification(
            False,
            count,
            None,
            None,
            "the chain's head (meta 'audit_head') is missing or unreadable",
        )
    if stored != end:
        return Verification(False, count, stored, *_head_mismatch(stored, end))
    return Verification(True, count, stored)


def _check(row: Any, expected: int, prev: str, scopes: Sequence[str]) -> str | None:
    """What is wrong with entry ``row`` where entry ``expected`` should follow ``prev``."""
    if row.id != expected:
        return (
            f"entry {expected} is missing: entry {row.id} follows entry {expected - 1} "
            "(entries were deleted)"
        )
    if row.prev_hash != prev:
        return (
            f"entry {row.id} does not link to entry {row.id - 1}: an entry was "
            f"inserted or replaced here, or entry {row.id - 1} was rewritten with its "
            "hash recomputed"
        )
    try:
        details = orjson.loads(row.details)
    except orjson.JSONDecodeError:
        details = None
    if isinstance(details, dict):
        event = AuditEvent(
            row.action,
            row.actor_user_id,
            row.actor_device_id,
            row.client_address,
            row.outcome,
            row.target,
            details,
            tuple(scopes),
        )
        if entry_hash(row.prev_hash, row.id, row.at, event) == row.hash:
            return None
    return f"entry {row.id} was edited: its content (or its scopes) no longer matches its hash"


def _head_mismatch(stored: ChainHead, end: ChainHead) -> tuple[int | None, str]:
    if stored.count > end.count:
        return end.count + 1, (
            f"the head records {stored.count} entries, but the trail ends at entry "
            f"{end.count}: entries from {end.count + 1} on were deleted from the end"
        )
    if stored.count < end.count:
        return stored.count + 1, (
            f"the head records {stored.count} entries, but the trail has {end.count}: "
            f"entries from {stored.count + 1} on were added outside the server, or the "
            "head was altered"
        )
    return end.count, (
        f"entry {end.count} does not match the head's hash: the last entry "
        "was rewritten, or the head altered"
    )


def _scope_range(conn: Connection, first: int, last: int) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    query = sa.select(audit_scopes.c.audit_id, audit_scopes.c.scope).where(
        audit_scopes.c.audit_id >= first, audit_scopes.c.audit_id <= last
    )
    for audit_id, scope in conn.execute(query):
        found[audit_id].append(scope)
    return found


def _short(head: ChainHead) -> str:
    return f"{head.count}:{head.hash[:12]}…"
