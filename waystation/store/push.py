"""Apply a pushed batch in one transaction: dedupe, decide each op, write the results.

The shape of a push, in SQL round trips: one query for op ids seen before, one per
collection for the records touched, the pure per-op decisions in Python (core.apply), then
bulk writes (executemany) of records, scope rows, unique keys, op-log rows and conflicts,
after the seq allocation (it opens the write phase, because it serialises writers until
commit): store/batch_writer.py.

Concurrent writers (PostgreSQL; SQLite has one writer) cannot lose each other's updates:

- records that exist are read ``FOR UPDATE`` (sorted by collection and id, so two batches
  touching the same records lock them in the same order): a second writer waits, then
  merges into the first one's committed state;
- a record that does not exist yet has no row to lock, so it is written with a plain
  ``INSERT`` (never an upsert that would overwrite a concurrent creation): if another writer
  created it meanwhile, the insert hits the primary key and the whole batch runs again
  (``Database.transact``), this time reading that record ``FOR UPDATE`` and merging into it;
- an op id pushed twice at once (a retry racing its first attempt) and a unique key claimed
  by two records at once meet the real unique indexes (``op_log_first_receipt``,
  ``unique_keys``' primary key) the same way: the loser runs again and sees the winner,
  so it answers ``duplicate`` or a ``UNIQUE_VIOLATION`` conflict.

(Advisory locks per new record would avoid the re-run, but every lock takes a slot of
PostgreSQL's shared lock table — ``max_locks_per_transaction`` times connections, 6,400 by
default — and one batch may create 5,000 records.)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.apply import (
    ApplyContext,
    ConflictDraft,
    Verdict,
    decide,
    visible_version,
)
from waystation.core.errors import StaleUpdate, ValidationError, WaystationError
from waystation.core.ids import uuid7
from waystation.core.protocol import BadChange, Change, OpResult
from waystation.core.record import RecordState
from waystation.core.schema import CollectionSpec
from waystation.store import bulk
from waystation.store.batch_writer import BatchWriter, LogEntry, Touched, echo_of, write_batch
from waystation.store.codec import dumps, state_from_row
from waystation.store.tables import records

log = logging.getLogger("waystation.store")
_CHUNK = 500

_FIND_KEY = (
    "SELECT record_id FROM unique_keys WHERE collection = ? AND key_name = ? AND key_value = ?"
)
_STATE_COLUMNS = ("collection, id, version, conflict, fields, clocks, deleted_clock,"
                  " field_meta")
_Earlier = tuple[str, OpResult, bool]  # (user id, first result, first seen in this batch)


def apply_batch(
    conn: Connection,
    ctx: ApplyContext,
    parsed: Sequence[Change | BadChange],
    *,
    received_at: int,
    expected_version: int | None = None,
) -> list[OpResult]:
    """Apply the ops (``core.protocol.parse_changes``) in order; one result per op, in the
    same order.

    Runs inside the caller's write transaction. ``expected_version`` (for ``PUT`` with
    ``If-Match``) raises StaleUpdate when the single op's record moved on.
    """
    writer = BatchWriter(ctx, received_at)
    ops = [c for c in parsed if isinstance(c, Change)]
    first_outcomes = _first_outcomes(conn, [c.op_id for c in ops])
    states = _load_states(conn, ctx, ops)
    stored = set(states)  # rows that exist (and, on PostgreSQL, are locked)
    writer.known_keys = _prefetch_keys(conn, ctx, ops, states)
    seen_in_batch: dict[str, _Earlier] = {}
    for item in parsed:
        if isinstance(item, BadChange):
            writer.results.append(_rejected(item.op_id, item.error))
            continue
        earlier = seen_in_batch.get(item.op_id) or first_outcomes.get(item.op_id)
        if earlier is not None:
            _repeat(writer, item, earlier)
            continue
        key = (item.collection, item.record_id)
        state = states.get(key)
        if expected_version is not None:
            # as the caller may know it: a hidden record's version is never revealed
            current_version = visible_version(ctx.principal, ctx.schema.get(item.collection),
                                              state)
            if current_version != expected_version:
                raise StaleUpdate(
                    f"{item.collection}/{item.record_id} is at version {current_version},"
                    f" not {expected_version}: reload it and apply your change again",
                    {"version": current_version, "expected": expected_version},
                )
        verdict = _decide_or_reject(ctx, item, state)
        if verdict.status == "applied" and verdict.state is not None and verdict.changed:
            verdict = _check_unique(conn, writer, item, state, verdict)
        result = _record(writer, item, state, verdict)
        if verdict.state is not None and (verdict.changed or verdict.status == "conflict"):
            states[key] = verdict.state
        seen_in_batch[item.op_id] = (ctx.principal.user_id, result, True)
    write_batch(conn, writer, stored)
    return writer.results


def _decide_or_reject(ctx: ApplyContext, op: Change, state: RecordState | None) -> Verdict:
    """``decide``, with a net: a defect that one op's content sets off (anything but a
    WaystationError, which decide turns into a rejection itself) rejects that op alone, and
    the rest of its batch is applied. Logged with its trace; the answer carries none."""
    try:
        return decide(ctx, op, state)
    except Exception:
        log.exception("op %s (%s/%s) could not be decided", op.op_id, op.collection,
                      op.record_id)
        return Verdict.rejected(WaystationError(
            "the server could not apply this op (a defect, logged on the server); it stays "
            "on the device with this reason so it can be fixed or sent again later"))


def _rejected(op_id: str | None, error: WaystationError) -> OpResult:
    return {"op_id": op_id, "status": "rejected", "error": _error_body(error)}


def _error_body(error: WaystationError) -> Any:
    return {"code": error.code, "message": error.message, "details": error.details}


def _first_outcomes(conn: Connection, op_ids: list[str]) -> dict[str, _Earlier]:
    """First results of op ids received before, with the user who sent them."""
    found: dict[str, _Earlier] = {}
    unique_ids = list(dict.fromkeys(op_ids))
    false = "0" if conn.dialect.name == "sqlite" else "false"
    for start in range(0, len(unique_ids), _CHUNK):
        chunk = unique_ids[start : start + _CHUNK]
        # a literal, so that the planner picks the partial index op_log_first_receipt
        among, params = bulk.one_of("op_id", chunk)
        sql = f"SELECT op_id, user_id, result FROM op_log WHERE duplicate = {false} AND {among}"
        for op_id, user_id, result in bulk.fetch(conn, sql, params):
            found[op_id] = (user_id, orjson.loads(result), False)
    return found


def _load_states(
    conn: Connection, ctx: ApplyContext, ops: list[Change]
) -> dict[tuple[str, str], RecordState]:
    by_collection: dict[str, set[str]] = defaultdict(set)
    for op in ops:
        by_collection[op.collection].add(op.record_id)
    states: dict[tuple[str, str], RecordState] = {}
    lock = "" if conn.dialect.name.startswith("sqlite") else " ORDER BY id FOR UPDATE"
    # Sorted, so that two batches touching the same records lock them in the same order.
    for collection in sorted(by_collection):
        id_list = sorted(by_collection[collection])
        for start in range(0, len(id_list), _CHUNK):
            chunk = id_list[start : start + _CHUNK]
            among, params = bulk.one_of("id", chunk)
            sql = f"SELECT {_STATE_COLUMNS} FROM records WHERE collection = ? AND {among}{lock}"
            for row in bulk.fetch(conn, sql, (collection, *params)):
                states[(row.collection, row.id)] = state_from_row(row)
    return states


def _prefetch_keys(
    conn: Connection, ctx: ApplyContext, ops: list[Change],
    states: dict[tuple[str, str], RecordState],
) -> dict[tuple[str, str, str], str | None]:
    """Who holds the unique keys the batch's upserts would claim: one query per collection
    (and 500 values) instead of one per op. The fields are the op's over the record's, as a
    merge that lets the op through makes them."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for op in ops:
        spec = ctx.schema.get(op.collection)
        if op.op != "upsert" or spec is None or not spec.unique:
            continue
        state = states.get((op.collection, op.record_id))
        fields = {**state.fields, **op.fields} if state is not None else op.fields
        for name, value in spec.unique_keys_of(fields).items():
            wanted[(op.collection, name)].add(value)
    known: dict[tuple[str, str, str], str | None] = {}
    for (collection, name), values in wanted.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            # the whole primary key (collection, key_name, key_value): index lookups only
            among, params = bulk.one_of("key_value", chunk)
            sql = ("SELECT key_value, record_id FROM unique_keys WHERE collection = ?"
                   f" AND key_name = ? AND {among}")
            for value, holder in bulk.fetch(conn, sql, (collection, name, *params)):
                known[(collection, name, value)] = holder
        for value in values:
            known.setdefault((collection, name, value), None)
    return known


def _repeat(writer: BatchWriter, op: Change, earlier: _Earlier) -> None:
    """A re-sent op: repeat its first outcome (or refuse an op id of another user)."""
    user, first, in_this_batch = earlier
    result: OpResult
    if user != writer.ctx.principal.user_id:
        error = ValidationError(
            f"op id {op.op_id} was already used by another user; make a fresh op id",
            {"field": "op_id"},
        )
        result = _rejected(op.op_id, error)
    else:
        result = echo_of(op.op_id, first)
        if in_this_batch:
            writer.echoes.append((result, first))
    writer.results.append(result)
    writer.log_rows.append(_log_row(writer, op, None, result, duplicate=True))


def _check_unique(
    conn: Connection,
    writer: BatchWriter,
    op: Change,
    before: RecordState | None,
    verdict: Verdict,
) -> Verdict:
    """Turn an applied verdict into a UNIQUE_VIOLATION conflict when a live record of the
    same collection already holds one of the new state's unique keys."""
    spec = writer.ctx.schema.collections[op.collection]
    new = verdict.state
    assert new is not None
    if not spec.unique or new.is_deleted(spec.counters):
        return verdict
    old_keys = _live_keys(spec, before)
    for name, value in spec.unique_keys_of(new.fields).items():
        if old_keys.get(name) == value:
            continue
        slot = (op.collection, name, value)
        if slot in writer.batch_keys:
            holder = writer.batch_keys[slot]
        elif slot in writer.known_keys:
            holder = writer.known_keys[slot]
        else:  # a key the prefetch could not foresee (a merge kept other values)
            found = bulk.fetch(conn, _FIND_KEY, slot)
            holder = found[0][0] if found else None
        if holder is not None and holder != op.record_id:
            existing = _existing_fields(writer, conn, op.collection, holder)
            visible = writer.ctx.principal.can_see(spec.scopes_of(holder, existing))
            # The key's values are the pusher's own; the holder's id only if it may see it.
            where = f" ({holder})" if visible else ", outside your scopes,"
            message = (f"another {op.collection} record{where} already has {name} = "
                       f"{value.replace(chr(31), ', ')}")
            if not visible:
                message += ("; a reviewer of that record's scopes can resolve this, or change "
                            "the key (e.g. the date) of yours")
            return Verdict(
                "conflict",
                state=before,
                hlc=verdict.hlc,
                restamped=verdict.restamped,
                conflict=ConflictDraft(
                    "UNIQUE_VIOLATION",
                    message,
                    server_fields=existing,
                    client_fields=dict(op.fields),
                    existing_id=holder,
                    existing_visible=visible,
                ),
            )
    return verdict


def _existing_fields(
    writer: BatchWriter, conn: Connection, collection: str, record_id: str
) -> dict[str, Any]:
    touched = writer.touched.get((collection, record_id))
    if touched is not None:
        return dict(touched.state.fields)
    row = conn.execute(
        sa.select(records.c.fields).where(
            records.c.collection == collection, records.c.id == record_id
        )
    ).scalar_one_or_none()
    return dict(orjson.loads(row)) if row else {}


def _live_keys(spec: CollectionSpec, state: RecordState | None) -> dict[str, str]:
    if state is None or not state.exists or state.is_deleted(spec.counters):
        return {}
    return spec.unique_keys_of(state.fields)


def _record(
    writer: BatchWriter, op: Change, before: RecordState | None, verdict: Verdict
) -> OpResult:
    """Turn a verdict into the op's result, and remember what must be written."""
    result: OpResult
    index = len(writer.results)
    if verdict.status == "rejected":
        assert verdict.error is not None
        result = _rejected(op.op_id, verdict.error)
    elif verdict.status == "conflict":
        result = _open_conflict(writer, op, before, verdict, index)
    else:
        assert verdict.state is not None
        spec = writer.ctx.schema.collections[op.collection]
        result = {"op_id": op.op_id, "status": "applied", "version": verdict.state.version}
        if verdict.hlc is not None:
            result["hlc"] = verdict.hlc
        if verdict.restamped:
            result["restamped"] = True
        if verdict.superseded:
            result["superseded"] = verdict.superseded
        if verdict.changed:
            _touch(writer, spec, before, verdict.state, index)
        else:
            writer.unchanged.append((result, (op.collection, op.record_id)))
    writer.results.append(result)
    writer.log_rows.append(_log_row(writer, op, verdict, result, duplicate=False))
    return result


def _open_conflict(
    writer: BatchWriter, op: Change, before: RecordState | None, verdict: Verdict, index: int
) -> OpResult:
    """Hold the op whole in a new open conflict; a manual one flags the record."""
    ctx = writer.ctx
    draft = verdict.conflict
    assert draft is not None
    conflict_id = uuid7()
    writer.conflict_rows.append(
        {
            "id": conflict_id,
            "collection": op.collection,
            "record_id": op.record_id,
            "kind": draft.code,
            "op_id": op.op_id,
            "op_kind": op.op,
            "hlc": verdict.hlc,
            "base_version": op.base_version,
            "server_fields": dumps(draft.server_fields),
            "client_fields": dumps(draft.client_fields),
            "existing_id": draft.existing_id,
            "device_id": ctx.principal.device_id,
            "user_id": ctx.principal.user_id,
            "created_at": writer.received_at,
        }
    )
    if draft.code == "MANUAL_REVIEW" and verdict.state is not None and not verdict.state.conflict:
        flagged = verdict.state.copy()
        flagged.conflict = True
        verdict.state = flagged
        _touch(writer, ctx.schema.collections[op.collection], before, flagged, index)
    return {
        "op_id": op.op_id,
        "status": "conflict",
        "conflict_id": conflict_id,
        "error": {
            "code": draft.code,
            "message": draft.message,
            "details": (
                {"existing_id": draft.existing_id}
                if draft.existing_id and draft.existing_visible else {}
            ),
        },
    }


def _touch(
    writer: BatchWriter,
    spec: CollectionSpec,
    before: RecordState | None,
    state: RecordState,
    result_index: int,
) -> None:
    key = (state.collection, state.id)
    entry = writer.touched.get(key)
    if entry is None:
        old_scopes = (
            spec.scopes_of(state.id, before.fields) if before is not None and before.exists
            else None
        )
        entry = Touched(state, old_scopes, _live_keys(spec, before))
        writer.touched[key] = entry
    entry.state = state
    entry.result_indexes.append(result_index)
    for name, value in _live_keys(spec, before).items():
        slot = (state.collection, name, value)
        if writer.batch_keys.get(slot, state.id) == state.id:
            writer.batch_keys[slot] = None  # released (re-claimed just below if kept)
    for name, value in _live_keys(spec, state).items():
        writer.batch_keys[(state.collection, name, value)] = state.id


def _log_row(
    writer: BatchWriter,
    op: Change,
    verdict: Verdict | None,
    result: OpResult,
    *,
    duplicate: bool,
) -> LogEntry:
    return (op, verdict.hlc if verdict is not None else None, result, duplicate)
