"""Writing a batch's plan (``core/plan.py``) in bulk, in the caller's write transaction.

Seqs are allocated first, because the allocation serialises writers until commit (see
store/sequence.py): everything before it — the reads and decisions of ``store/push.py`` —
runs concurrently on PostgreSQL. Then one ``executemany`` per table: records (inserted when
new, so a concurrent creation fails instead of being overwritten; upserted when they
existed and are locked), scope rows, unique keys, conflicts and op-log rows. Op-log rows
are made last, once every answer (including a re-send's echo of an op earlier in the same
batch) has its seq.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from waystation.core.plan import BatchPlan, LogEntry, RecordKey
from waystation.core.protocol import OpResult
from waystation.store import bulk
from waystation.store.codec import dumps
from waystation.store.sequence import advance_hlc, allocate_seqs
from waystation.store.transaction import Transaction

_RECORD_COLUMNS = (
    "collection, id, seq, version, deleted, conflict, fields, clocks,"
    " deleted_clock, field_meta, updated_at"
)
_UPSERT_RECORD = (
    f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (collection, id) DO UPDATE SET seq = excluded.seq,"
    " version = excluded.version, deleted = excluded.deleted, conflict = excluded.conflict,"
    " fields = excluded.fields, clocks = excluded.clocks,"
    " deleted_clock = excluded.deleted_clock, field_meta = excluded.field_meta,"
    " updated_at = excluded.updated_at"
)
# A record this batch creates: no upsert, so a concurrent creation is an error, not lost.
_INSERT_RECORD = f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE_SCOPES = "DELETE FROM record_scopes WHERE collection = ? AND record_id = ?"
_INSERT_SCOPE = "INSERT INTO record_scopes (collection, record_id, scope, seq) VALUES (?, ?, ?, ?)"
_DELETE_KEYS = "DELETE FROM unique_keys WHERE collection = ? AND record_id = ?"
_INSERT_KEY = (
    "INSERT INTO unique_keys (collection, key_name, key_value, record_id) VALUES (?, ?, ?, ?)"
)
_INSERT_CONFLICT = sa.text(
    "INSERT INTO conflicts (id, collection, record_id, kind, op_id, op_kind, hlc, base_version,"
    " server_fields, client_fields, existing_id, device_id, user_id, status, created_at)"
    " VALUES (:id, :collection, :record_id, :kind, :op_id, :op_kind, :hlc, :base_version,"
    " :server_fields, :client_fields, :existing_id, :device_id, :user_id, 'open', :created_at)"
)
_INSERT_LOG = (
    "INSERT INTO op_log (op_id, user_id, device_id, collection, record_id, kind, hlc,"
    " effective_hlc, base_version, fields, created_at_client, received_at, status,"
    " error_code, result, duplicate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def write_plan(tx: Transaction, plan: BatchPlan) -> list[OpResult]:
    """Write ``plan``; returns the answers with their seqs, one per op, in order.

    Allocates the seqs first (it serialises writers until commit) and notes the changes on
    ``tx`` for the transaction's notice. Raises what the database raises: on PostgreSQL a
    unique violation when a concurrent writer created a record or claimed a key first
    (``Database.transact`` then runs the whole batch again)."""
    conn = tx.conn
    records = plan.records
    seqs = allocate_seqs(tx, len(records)) if records else range(0)
    new_rows: list[tuple[Any, ...]] = []
    record_rows: list[tuple[Any, ...]] = []
    changed_scopes: set[str] = set()
    scope_deletes: list[RecordKey] = []
    scope_rows: list[tuple[str, str, str, int]] = []
    key_deletes: list[RecordKey] = []
    key_rows: list[tuple[str, str, str, str]] = []
    new_seqs: dict[RecordKey, int] = {}
    received_at = plan.received_at
    for record, seq in zip(records, seqs, strict=True):
        state = record.state
        collection, record_id = key = (state.collection, state.id)
        new_seqs[key] = seq
        row = (
            collection,
            record_id,
            seq,
            state.version,
            record.deleted,
            state.conflict,
            dumps(state.fields),
            dumps(state.clocks),
            state.deleted_clock,
            dumps({"v": state.field_versions, "d": state.field_devices}),
            received_at,
        )
        (record_rows if record.stored else new_rows).append(row)
        if record.replace_scopes:
            scope_deletes.append(key)
        changed_scopes.update(record.scopes)
        scope_rows.extend((collection, record_id, scope, seq) for scope in record.scopes)
        if record.unique_keys != record.old_keys:
            if record.old_keys:
                key_deletes.append(key)
            key_rows.extend((collection, n, v, record_id) for n, v in record.unique_keys.items())
    results = _answers(plan, new_seqs)
    if records:
        tx.notes.note_changes({r.state.collection for r in records}, changed_scopes)
    bulk.executemany(conn, _INSERT_RECORD, new_rows)
    bulk.executemany(conn, _UPSERT_RECORD, record_rows)
    bulk.executemany(conn, _DELETE_SCOPES, scope_deletes)
    bulk.executemany(conn, _INSERT_SCOPE, scope_rows)
    bulk.executemany(conn, _DELETE_KEYS, key_deletes)
    bulk.executemany(conn, _INSERT_KEY, key_rows)
    if plan.conflicts:
        conn.execute(
            _INSERT_CONFLICT,
            [
                {
                    "id": c.id,
                    "collection": c.collection,
                    "record_id": c.record_id,
                    "kind": c.kind,
                    "op_id": c.op_id,
                    "op_kind": c.op_kind,
                    "hlc": c.hlc,
                    "base_version": c.base_version,
                    "server_fields": dumps(c.server_fields),
                    "client_fields": dumps(c.client_fields),
                    "existing_id": c.existing_id,
                    "device_id": plan.device_id,
                    "user_id": plan.user_id,
                    "created_at": received_at,
                }
                for c in plan.conflicts
            ],
        )
    bulk.executemany(conn, _INSERT_LOG, [_log_tuple(plan, entry, results) for entry in plan.op_log])
    advance_hlc(conn, "last_hlc", plan.clock)
    return results


def _answers(plan: BatchPlan, new_seqs: dict[RecordKey, int]) -> list[OpResult]:
    """Each answer with its seq: an applied op reports its record's new seq (or the seq it
    had, when the batch did not write it); a re-send in the same batch reports the seq of
    the answer it repeats."""
    results: list[OpResult] = []
    given: list[int | None] = []
    for answer in plan.answers:
        seq: int | None = None
        if answer.repeats is not None:
            seq = given[answer.repeats]
        elif answer.seq_of is not None:
            seq = new_seqs.get(answer.seq_of, answer.stored_seq)
        given.append(seq)
        results.append(answer.result if seq is None else {**answer.result, "seq": str(seq)})
    return results


def _log_tuple(plan: BatchPlan, entry: LogEntry, results: list[OpResult]) -> tuple[Any, ...]:
    """An op-log row, made once the batch's answers have their seqs."""
    op = entry.op
    result = results[entry.answer]
    error = result.get("error")
    created = op.created_at_client
    return (
        op.op_id,
        plan.user_id,
        plan.device_id,
        op.collection,
        op.record_id,
        op.op,
        op.hlc,
        entry.effective_hlc,
        op.base_version,
        dumps(op.fields),
        int(created.timestamp() * 1000) if created else None,
        plan.received_at,
        result["status"],
        error["code"] if error else None,
        dumps(result),
        entry.duplicate,
    )
