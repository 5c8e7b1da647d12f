"""Plan a pushed batch: read what it needs, dedupe, decide each op (``core/apply.py``),
and return what to write as a ``BatchPlan`` (``core/plan.py``; ``core/planner.py``
collects it); ``store/write_plan.py`` writes it in the same transaction.

The shape of a push, in SQL round trips: one query for op ids seen before, one per
collection for the records touched, one per collection and unique key for the keys the
batch would claim, the pure per-op decisions in Python, then bulk writes (executemany) of
records, scope rows, unique keys, op-log rows and conflicts, after the seq allocation (it
opens the write phase, because it serialises writers until commit).

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
from waystation.core.errors import StaleUpdate, WaystationError
from waystation.core.plan import BatchPlan, RecordKey
from waystation.core.planner import Earlier, KeySlot, PlanBuilder, live_keys
from waystation.core.protocol import BadChange, Change
from waystation.core.record import RecordState
from waystation.store import bulk
from waystation.store.codec import state_from_row
from waystation.store.tables import records

log = logging.getLogger("waystation.store")
_CHUNK = 500

_FIND_KEY = (
    "SELECT record_id FROM unique_keys WHERE collection = ? AND key_name = ? AND key_value = ?"
)
_STATE_COLUMNS = "collection, id, version, conflict, fields, clocks, deleted_clock, field_meta, seq"


def plan_batch(
    conn: Connection,
    ctx: ApplyContext,
    parsed: Sequence[Change | BadChange],
    *,
    received_at: int,
    expected_version: int | None = None,
) -> BatchPlan:
    """Decide the ops (``core.protocol.parse_changes``) in order; the plan has one answer
    per op, in the same order.

    Reads inside the caller's write transaction (on PostgreSQL the records it touches are
    locked until commit) and writes nothing. ``expected_version`` (for ``PUT`` with
    ``If-Match``) raises StaleUpdate when the single op's record moved on.
    """
    ops = [c for c in parsed if isinstance(c, Change)]
    first_outcomes = _first_outcomes(conn, [c.op_id for c in ops])
    states, stored_seqs = _load_states(conn, ops)
    known_keys = _prefetch_keys(conn, ctx, ops, states)
    plan = PlanBuilder(ctx, received_at, states, stored_seqs)
    for item in parsed:
        if isinstance(item, BadChange):
            plan.reject(item.op_id, item.error)
            continue
        earlier = plan.seen(item.op_id) or first_outcomes.get(item.op_id)
        if earlier is not None:
            plan.repeat(item, earlier)
            continue
        state = plan.state_of((item.collection, item.record_id))
        if expected_version is not None:
            # as the caller may know it: a hidden record's version is never revealed
            current_version = visible_version(ctx.principal, ctx.schema.get(item.collection), state)
            if current_version != expected_version:
                raise StaleUpdate(
                    f"{item.collection}/{item.record_id} is at version {current_version},"
                    f" not {expected_version}: reload it and apply your change again",
                    {"version": current_version, "expected": expected_version},
                )
        verdict = _decide_or_reject(ctx, item, state)
        if verdict.status == "applied" and verdict.state is not None and verdict.changed:
            verdict = _check_unique(conn, plan, known_keys, item, state, verdict)
        plan.record(item, state, verdict)
    return plan.finish()


def _decide_or_reject(ctx: ApplyContext, op: Change, state: RecordState | None) -> Verdict:
    """``decide``, with a net: a defect that one op's content sets off (anything but a
    WaystationError, which decide turns into a rejection itself) rejects that op alone, and
    the rest of its batch is applied. Logged with its trace; the answer carries none."""
    try:
        return decide(ctx, op, state)
    except Exception:
        log.exception("op %s (%s/%s) could not be decided", op.op_id, op.collection, op.record_id)
        return Verdict.rejected(
            WaystationError(
                "the server could not apply this op (a defect, logged on the server); it stays "
                "on the device with this reason so it can be fixed or sent again later"
            )
        )


def _first_outcomes(conn: Connection, op_ids: list[str]) -> dict[str, Earlier]:
    """First results of op ids received before, with the user who sent them."""
    found: dict[str, Earlier] = {}
    unique_ids = list(dict.fromkeys(op_ids))
    false = "0" if conn.dialect.name == "sqlite" else "false"
    for start in range(0, len(unique_ids), _CHUNK):
        chunk = unique_ids[start : start + _CHUNK]
        # a literal, so that the planner picks the partial index op_log_first_receipt
        among, params = bulk.one_of("op_id", chunk)
        sql = f"SELECT op_id, user_id, result FROM op_log WHERE duplicate = {false} AND {among}"
        for op_id, user_id, result in bulk.fetch(conn, sql, params):
            found[op_id] = Earlier(user_id, orjson.loads(result))
    return found


def _load_states(
    conn: Connection, ops: list[Change]
) -> tuple[dict[RecordKey, RecordState], dict[RecordKey, int]]:
    """The records the ops touch, as stored, and their seqs (on PostgreSQL locked until
    commit, so neither moves before the plan is written)."""
    by_collection: dict[str, set[str]] = defaultdict(set)
    for op in ops:
        by_collection[op.collection].add(op.record_id)
    states: dict[RecordKey, RecordState] = {}
    seqs: dict[RecordKey, int] = {}
    lock = "" if conn.dialect.name.startswith("sqlite") else " ORDER BY id FOR UPDATE"
    # Sorted, so that two batches touching the same records lock them in the same order.
    for collection in sorted(by_collection):
        id_list = sorted(by_collection[collection])
        for start in range(0, len(id_list), _CHUNK):
            chunk = id_list[start : start + _CHUNK]
            among, params = bulk.one_of("id", chunk)
            sql = f"SELECT {_STATE_COLUMNS} FROM records WHERE collection = ? AND {among}{lock}"
            for row in bulk.fetch(conn, sql, (collection, *params)):
                key = (row.collection, row.id)
                states[key] = state_from_row(row)
                seqs[key] = row.seq
    return states, seqs


def _prefetch_keys(
    conn: Connection,
    ctx: ApplyContext,
    ops: list[Change],
    states: dict[RecordKey, RecordState],
) -> dict[KeySlot, str | None]:
    """Who holds the unique keys the batch's upserts would claim: one query per collection
    (and 500 values) instead of one per op. The fields are the op's over the record's, as a
    merge that lets the op through makes them. None: no record holds the key."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for op in ops:
        spec = ctx.schema.get(op.collection)
        if op.op != "upsert" or spec is None or not spec.unique:
            continue
        state = states.get((op.collection, op.record_id))
        fields = {**state.fields, **op.fields} if state is not None else op.fields
        for name, value in spec.unique_keys_of(fields).items():
            wanted[(op.collection, name)].add(value)
    known: dict[KeySlot, str | None] = {}
    for (collection, name), values in wanted.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            # the whole primary key (collection, key_name, key_value): index lookups only
            among, params = bulk.one_of("key_value", chunk)
            sql = (
                "SELECT key_value, record_id FROM unique_keys WHERE collection = ?"
                f" AND key_name = ? AND {among}"
            )
            for value, holder in bulk.fetch(conn, sql, (collection, name, *params)):
                known[(collection, name, value)] = holder
        for value in values:
            known.setdefault((collection, name, value), None)
    return known


def _check_unique(
    conn: Connection,
    plan: PlanBuilder,
    known_keys: dict[KeySlot, str | None],
    op: Change,
    before: RecordState | None,
    verdict: Verdict,
) -> Verdict:
    """Turn an applied verdict into a UNIQUE_VIOLATION conflict when a live record of the
    same collection already holds one of the new state's unique keys."""
    principal = plan.ctx.principal
    spec = plan.ctx.schema.collections[op.collection]
    new = verdict.state
    assert new is not None
    if not spec.unique or new.is_deleted(spec.counters):
        return verdict
    old_keys = live_keys(spec, before)
    for name, value in spec.unique_keys_of(new.fields).items():
        if old_keys.get(name) == value:
            continue
        slot = (op.collection, name, value)
        if slot in plan.batch_keys:
            holder = plan.batch_keys[slot]
        elif slot in known_keys:
            holder = known_keys[slot]
        else:  # a key the prefetch could not foresee (a merge kept other values)
            found = bulk.fetch(conn, _FIND_KEY, slot)
            holder = found[0][0] if found else None
        if holder is not None and holder != op.record_id:
            existing = _existing_fields(plan, conn, op.collection, holder)
            visible = principal.can_see(spec.scopes_of(holder, existing))
            # The key's values are the pusher's own; the holder's id only if it may see it.
            where = f" ({holder})" if visible else ", outside your scopes,"
            message = (
                f"another {op.collection} record{where} already has {name} = "
                f"{value.replace(chr(31), ', ')}"
            )
            if not visible:
                message += (
                    "; a reviewer of that record's scopes can resolve this, or change "
                    "the key (e.g. the date) of yours"
                )
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
    plan: PlanBuilder, conn: Connection, collection: str, record_id: str
) -> dict[str, Any]:
    written = plan.written_fields((collection, record_id))
    if written is not None:
        return written
    row = conn.execute(
        sa.select(records.c.fields).where(
            records.c.collection == collection, records.c.id == record_id
        )
    ).scalar_one_or_none()
    return dict(orjson.loads(row)) if row else {}
