"""Conflicts held for review: list them for a reviewer, and resolve them.

Who reviews what is core's rule (core/access.py: ``require_reviewer``, ``conflict_sight``,
``check_decision``); this module reads what the rule needs. A conflict out of a health
worker's scopes is reported as missing, as records are: its existence is itself
information about a patient.

A resolution is carried out as ordinary changes (core/resolution.py plans them) stamped
with fresh server clocks and applied through the push path (``plan_batch``; ``write_plan``
once every one of them is applied), so they get seqs, op-log rows and scope rows like any
push, and every replica pulls them. The
conflict's row flips to ``resolved`` in the same transaction; when the record's last open
``MANUAL_REVIEW`` conflict closes, its ``conflict`` flag clears and the record gets a new
seq (if the resolution did not already give it one) so the cleared flag travels too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import (
    EVERYTHING,
    Principal,
    Sight,
    check_decision,
    conflict_sight,
    needs_other_reviewer,
    require_reviewer,
)
from waystation.core.apply import ApplyContext
from waystation.core.errors import (
    ERRORS_BY_CODE,
    AlreadyResolved,
    NotFound,
    UniqueViolation,
    ValidationError,
    WaystationError,
)
from waystation.core.hlc import Clock
from waystation.core.protocol import OpResult
from waystation.core.record import RecordState
from waystation.core.resolution import (
    HeldOp,
    ResolveRequest,
    plan_resolution,
    stamp_changes,
    stored_resolution,
)
from waystation.core.schema import Schema
from waystation.core.timefmt import rfc3339
from waystation.store.codec import state_from_row
from waystation.store.push import plan_batch
from waystation.store.sequence import allocate_seqs
from waystation.store.tables import conflicts, record_scopes, records
from waystation.store.transaction import Transaction
from waystation.store.write_plan import write_plan

_SCAN = 500


@dataclass(frozen=True, slots=True)
class ConflictPage:
    conflicts: list[dict[str, Any]]
    has_more: bool


def conflict_body(row: Any, sight: Sight = EVERYTHING) -> dict[str, Any]:
    """A conflicts row as the API shows it to a reviewer with ``sight``."""
    resolution = row.resolution
    target = None
    if resolution == "merge_existing":
        resolution, target = "merge", "existing"
    unique = row.kind == "UNIQUE_VIOLATION"
    server_visible = sight.existing if unique else sight.record
    hidden = [
        side
        for side, seen in (("record", sight.record), ("existing", sight.existing))
        if not seen and (side == "record" or row.existing_id is not None)
    ]
    return {
        "id": row.id,
        "collection": row.collection,
        "record_id": row.record_id if sight.record else None,
        "kind": row.kind,
        "op_id": row.op_id,
        "op": row.op_kind,
        "hlc": row.hlc,
        "base_version": row.base_version,
        "server_fields": orjson.loads(row.server_fields) if server_visible else None,
        "client_fields": orjson.loads(row.client_fields) if sight.record else None,
        "existing_id": row.existing_id if sight.existing else None,
        "hidden": hidden,
        "device_id": row.device_id,
        "user_id": row.user_id,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "resolution": resolution,
        "target": target,
        "resolved_by": row.resolved_by,
        "resolved_at": rfc3339(row.resolved_at),
    }


def list_conflicts(
    conn: Connection,
    schema: Schema,
    principal: Principal,
    *,
    status: str,
    collection: str | None = None,
    record_id: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> ConflictPage:
    """Conflicts with ``status`` the caller may review, oldest first (by id, a UUIDv7),
    after the id ``after``; at most ``limit``."""
    require_reviewer(principal)
    query = sa.select(conflicts).where(conflicts.c.status == status).order_by(conflicts.c.id)
    if collection is not None:
        query = query.where(conflicts.c.collection == collection)
    if record_id is not None:
        query = query.where(conflicts.c.record_id == record_id)
    found: list[dict[str, Any]] = []
    cursor = after
    while len(found) <= limit:
        page_query = query if cursor is None else query.where(conflicts.c.id > cursor)
        rows = conn.execute(page_query.limit(_SCAN)).all()
        if not rows:
            break
        sights = _sights(conn, schema, principal, rows)
        # Filtering by a record id the caller may not see would confirm which conflict
        # holds it: such conflicts are left out, as a missing record's would be.
        found.extend(
            conflict_body(row, sights[row.id])
            for row in rows
            if row.id in sights and (record_id is None or sights[row.id].record)
        )
        cursor = rows[-1].id
        if len(rows) < _SCAN:
            break
    return ConflictPage(found[:limit], len(found) > limit)


def get_conflict(
    conn: Connection, schema: Schema, principal: Principal, conflict_id: str
) -> dict[str, Any]:
    """One conflict the caller may review; NotFound otherwise (Forbidden for roles that
    review none)."""
    require_reviewer(principal)
    row = _find(conn, conflict_id, lock=False)
    sight = _sights(conn, schema, principal, [row]).get(row.id) if row is not None else None
    if row is None or sight is None:
        raise NotFound(f"conflict {conflict_id} not found")
    return conflict_body(row, sight)


def resolve_conflict(
    tx: Transaction,
    schema: Schema,
    clock: Clock,
    max_clock_skew_ms: int,
    principal: Principal,
    conflict_id: str,
    request: ResolveRequest,
    *,
    now: int,
) -> dict[str, Any]:
    """Carry out ``request`` inside the caller's write transaction; returns the resolved
    conflict with ``changes``: the records the resolution wrote (version, seq, hlc).

    Raises Forbidden (role, or a write outside the reviewer's scopes), NotFound,
    AlreadyResolved, ValidationError (a decision that does not fit the conflict, or fields
    the schema refuses) and UniqueViolation (the resolution would take a key another live
    record holds). Nothing is written when it raises.
    """
    conn = tx.conn
    require_reviewer(principal)
    lock = not conn.dialect.name.startswith("sqlite")
    row = _find(conn, conflict_id, lock=lock)
    sight = _sights(conn, schema, principal, [row]).get(row.id) if row is not None else None
    if row is None or sight is None:
        raise NotFound(f"conflict {conflict_id} not found")
    if row.status != "open":
        public = conflict_body(row, sight)
        raise AlreadyResolved(
            f"conflict {conflict_id} was already resolved ({public['resolution']}) by "
            f"{row.resolved_by} at {public['resolved_at']}",
            {
                "resolution": public["resolution"],
                "target": public["target"],
                "resolved_by": row.resolved_by,
                "resolved_at": public["resolved_at"],
            },
        )
    spec = schema.get(row.collection)
    if spec is None:
        raise ValidationError(
            f"collection {row.collection!r} is no longer in the schema; this conflict can "
            "only be discarded by an administrator in the database",
            {"field": "collection"},
        )
    held = HeldOp(
        row.kind,
        row.collection,
        row.record_id,
        row.op_kind,
        row.hlc,
        orjson.loads(row.client_fields),
        row.existing_id,
    )
    check_decision(request, sight)
    wanted = {row.record_id}
    if request.target == "existing" and row.existing_id is not None:
        wanted.add(row.existing_id)
    # locked in id order, as the push path locks them, so the two never deadlock
    states = {rid: _state(conn, row.collection, rid, lock=lock) for rid in sorted(wanted)}
    record = states[row.record_id]
    existing = states.get(row.existing_id) if row.existing_id is not None else None
    plan = plan_resolution(held, request, record, existing, spec.counters)
    if not sight.record and any(c.record_id == row.record_id for c in plan):
        raise needs_other_reviewer()
    # Resolutions are the server's changes: no device, so a reviewer's own tablet never
    # counts them as its consecutive edits, and they stand out in the op log.
    reviewer = Principal(
        principal.user_id, principal.username, principal.role, principal.scopes, None
    )
    ctx = ApplyContext(schema, reviewer, clock, max_clock_skew_ms)
    changes = stamp_changes(row.collection, plan, clock)
    results: list[OpResult] = []
    if changes:
        batch = plan_batch(conn, ctx, changes, received_at=now)
        for answer in batch.results_before_seqs():
            _raise_unless_applied(answer)
        results = write_plan(tx, batch)
    conn.execute(
        sa.update(conflicts)
        .where(conflicts.c.id == row.id, conflicts.c.status == "open")
        .values(
            status="resolved",
            resolution=stored_resolution(request),
            resolved_by=principal.user_id,
            resolved_at=now,
        )
    )
    written = {c.record_id for c in plan}
    _settle_flag(tx, row.collection, row.record_id, row.record_id in written, now)
    body = conflict_body(_find(conn, row.id, lock=False), sight)
    body["changes"] = [
        {
            "collection": row.collection,
            "record_id": planned.record_id,
            "op": planned.op,
            "version": result.get("version"),
            "seq": result.get("seq"),
            "hlc": result.get("hlc"),
        }
        for planned, result in zip(plan, results, strict=True)
    ]
    return body


def open_conflict_count(
    conn: Connection, *, user_id: str | None = None, device_id: str | None = None
) -> int:
    query = sa.select(sa.func.count()).select_from(conflicts).where(conflicts.c.status == "open")
    if user_id is not None:
        query = query.where(conflicts.c.user_id == user_id)
    if device_id is not None:
        query = query.where(conflicts.c.device_id == device_id)
    return int(conn.execute(query).scalar_one())


def _raise_unless_applied(result: OpResult) -> None:
    if result["status"] == "applied":
        return
    error = result.get("error") or {"code": "INTERNAL", "message": "", "details": {}}
    if result["status"] == "conflict":
        hint = (
            "choose another key, or merge into that record"
            if error["details"].get("existing_id")
            else "choose another key"
        )
        raise UniqueViolation(
            f"the resolution cannot be applied: {error['message']}; {hint}",
            dict(error["details"]),
        )
    cls = ERRORS_BY_CODE.get(error["code"], WaystationError)
    raise cls(f"the resolution cannot be applied: {error['message']}", dict(error["details"]))


def _find(conn: Connection, conflict_id: str, *, lock: bool) -> Any:
    query = sa.select(conflicts).where(conflicts.c.id == conflict_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def _state(conn: Connection, collection: str, record_id: str, *, lock: bool) -> RecordState | None:
    query = sa.select(records).where(records.c.collection == collection, records.c.id == record_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return state_from_row(row) if row is not None else None


def _sights(
    conn: Connection, schema: Schema, principal: Principal, rows: Iterable[Any]
) -> dict[str, Sight]:
    """What the caller may see of each conflict among ``rows``, for those it may review at
    all: a side is visible when its record meets the caller's grants — the held op's
    record as the server has it (or as the op would create it), and the record holding the
    key of a UNIQUE_VIOLATION as the server has it."""
    rows = list(rows)
    if principal.is_admin:
        return {row.id: EVERYTHING for row in rows}
    keys = [(row.collection, row.record_id) for row in rows]
    keys += [(row.collection, row.existing_id) for row in rows if row.existing_id]
    fields = _record_fields(conn, keys)
    seen: dict[str, Sight] = {}
    for row in rows:
        spec = schema.get(row.collection)
        if spec is None:
            continue
        current = fields.get((row.collection, row.record_id))
        sight = conflict_sight(
            principal,
            spec,
            row.record_id,
            current if current is not None else orjson.loads(row.client_fields),
            row.existing_id,
            fields.get((row.collection, row.existing_id)) if row.existing_id else None,
        )
        if sight is not None:
            seen[row.id] = sight
    return seen


def _record_fields(
    conn: Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    by_collection: dict[str, set[str]] = defaultdict(set)
    for collection, record_id in keys:
        by_collection[collection].add(record_id)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for collection, ids in by_collection.items():
        query = sa.select(records.c.id, records.c.fields).where(
            records.c.collection == collection, records.c.id.in_(sorted(ids))
        )
        for row in conn.execute(query):
            found[(collection, row.id)] = orjson.loads(row.fields)
    return found


def _settle_flag(tx: Transaction, collection: str, record_id: str, written: bool, now: int) -> None:
    """Clear the record's ``conflict`` flag once no MANUAL_REVIEW conflict of it is open;
    give it a new seq unless the resolution just wrote it (so the change travels)."""
    conn = tx.conn
    still_open = conn.execute(
        sa.select(sa.func.count())
        .select_from(conflicts)
        .where(
            conflicts.c.collection == collection,
            conflicts.c.record_id == record_id,
            conflicts.c.status == "open",
            conflicts.c.kind == "MANUAL_REVIEW",
        )
    ).scalar_one()
    if still_open:
        return
    flagged = conn.execute(
        sa.select(records.c.conflict).where(
            records.c.collection == collection, records.c.id == record_id
        )
    ).scalar_one_or_none()
    if not flagged:
        return
    where = (records.c.collection == collection, records.c.id == record_id)
    if written:
        conn.execute(sa.update(records).where(*where).values(conflict=False))
        return
    scope_rows = (record_scopes.c.collection == collection, record_scopes.c.record_id == record_id)
    scopes = set(conn.execute(sa.select(record_scopes.c.scope).where(*scope_rows)).scalars())
    seq = allocate_seqs(tx, 1)[0]  # reads done: it serialises writers until commit
    tx.notes.note_changes({collection}, scopes)
    conn.execute(sa.update(records).where(*where).values(conflict=False, seq=seq, updated_at=now))
    conn.execute(sa.update(record_scopes).where(*scope_rows).values(seq=seq))
