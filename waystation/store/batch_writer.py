"""The write half of a push: a batch's effects, collected while its ops are decided
(store/push.py), then written in bulk.

Seqs are allocated first, because the allocation serialises writers until commit (see
store/sequence.py): everything before it runs concurrently on PostgreSQL. Then one
``executemany`` per table: records (inserted when new, so a concurrent creation fails
instead of being overwritten; upserted when they existed and are locked), scope rows,
unique keys, conflicts and op-log rows. Op-log rows are made last, once every result
(including a re-send's echo of an op earlier in the same batch) has its seq.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.apply import ApplyContext
from waystation.core.protocol import Change, OpResult
from waystation.core.record import RecordState
from waystation.store import bulk
from waystation.store.codec import dumps
from waystation.store.sequence import advance_hlc, allocate_seqs
from waystation.store.tables import records
from waystation.store.transaction import Transaction

_RECORD_COLUMNS = ("collection, id, seq, version, deleted, conflict, fields, clocks,"
                   " deleted_clock, field_meta, updated_at")
_UPSERT_RECORD = (
    f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (collection, id) DO UPDATE SET seq = excluded.seq,"
    " version = excluded.version, deleted = excluded.deleted, conflict = excluded.conflict,"
    " fields = excluded.fields, clocks = excluded.clocks,"
    " deleted_clock = excluded.deleted_clock, field_meta = excluded.field_meta,"
    " updated_at = excluded.updated_at"
)
# A record this batch creates: no upsert, so a concurrent creation is an error, not lost.
_INSERT_RECORD = (
    f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
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


@dataclass(slots=True)
class Touched:
    """A record changed by this batch: its newest state and what its old state was."""

    state: RecordState
    old_scopes: frozenset[str] | None
    old_keys: dict[str, str]
    result_indexes: list[int] = field(default_factory=list)


# (op, effective clock, result, re-send?): an op-log row before its result has its seq
LogEntry = tuple[Change, str | None, OpResult, bool]


@dataclass(slots=True)
class BatchWriter:
    """Collects the effects of a batch, then writes them in bulk."""

    ctx: ApplyContext
    received_at: int
    results: list[OpResult] = field(default_factory=list)
    log_rows: list[LogEntry] = field(default_factory=list)
    conflict_rows: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[tuple[str, str], Touched] = field(default_factory=dict)
    # unique keys claimed or released within this batch: (collection, name, value) -> id|None
    batch_keys: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    # holders of the unique keys the batch's upserts would claim, read up front:
    # (collection, name, value) -> record id, or None when no record holds it
    known_keys: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    # re-sends of an op first seen in this same batch: (their result, the first result),
    # completed once the first result has its seq
    echoes: list[tuple[OpResult, OpResult]] = field(default_factory=list)
    # applied ops that changed nothing: they report their record's current seq
    unchanged: list[tuple[OpResult, tuple[str, str]]] = field(default_factory=list)


def echo_of(op_id: str, first: OpResult) -> OpResult:
    """What a re-send is told: ``duplicate`` for an applied op, else the same verdict.

    A duplicate repeats the first outcome's version, seq, effective clock, ``restamped`` and
    ``superseded``: a device whose ack was lost must still adopt a re-stamped clock.
    """
    if first["status"] not in ("applied", "duplicate"):
        return {**first, "op_id": op_id, "duplicate": True}
    result: OpResult = {"op_id": op_id, "status": "duplicate"}
    for name in ("version", "seq", "hlc", "restamped", "superseded"):
        if name in first:
            result[name] = first[name]
    return result


def _log_tuple(writer: BatchWriter, entry: LogEntry) -> tuple[Any, ...]:
    """An op-log row, made once the batch's results have their seqs."""
    op, effective_hlc, result, duplicate = entry
    principal = writer.ctx.principal
    error = result.get("error")
    created = op.created_at_client
    return (
        op.op_id,
        principal.user_id,
        principal.device_id,
        op.collection,
        op.record_id,
        op.op,
        op.hlc,
        effective_hlc,
        op.base_version,
        dumps(op.fields),
        int(created.timestamp() * 1000) if created else None,
        writer.received_at,
        result["status"],
        error["code"] if error else None,
        dumps(result),
        duplicate,
    )


def write_batch(tx: Transaction, writer: BatchWriter, stored: set[tuple[str, str]]) -> None:
    """Bulk-write the batch; allocate seqs first (it serialises writers until commit).

    ``stored`` names the records that have a row (all others are inserted, see above)."""
    conn = tx.conn
    ctx = writer.ctx
    touched = list(writer.touched.values())
    seqs = allocate_seqs(tx, len(touched)) if touched else range(0)
    new_rows: list[tuple[Any, ...]] = []
    record_rows: list[tuple[Any, ...]] = []
    changed_scopes: set[str] = set()
    scope_deletes: list[tuple[str, str]] = []
    scope_rows: list[tuple[str, str, str, int]] = []
    key_deletes: list[tuple[str, str]] = []
    key_rows: list[tuple[str, str, str, str]] = []
    seq_by_key: dict[tuple[str, str], int] = {}
    received_at = writer.received_at
    results = writer.results
    for entry, seq in zip(touched, seqs, strict=True):
        state = entry.state
        collection, record_id = key = (state.collection, state.id)
        spec = ctx.schema.collections[collection]
        deleted = state.is_deleted(spec.counters)
        seq_by_key[key] = seq
        row = (
            collection, record_id, seq, state.version, deleted, state.conflict,
            dumps(state.fields), dumps(state.clocks), state.deleted_clock,
            dumps({"v": state.field_versions, "d": state.field_devices}), received_at,
        )
        (record_rows if key in stored else new_rows).append(row)
        if entry.old_scopes is not None:
            scope_deletes.append(key)
        scopes = spec.scopes_of(record_id, state.fields)
        changed_scopes.update(scopes)
        scope_rows.extend((collection, record_id, scope, seq) for scope in scopes)
        new_keys = {} if deleted else spec.unique_keys_of(state.fields)
        if new_keys != entry.old_keys:
            if entry.old_keys:
                key_deletes.append(key)
            key_rows.extend((collection, n, v, record_id) for n, v in new_keys.items())
        for index in entry.result_indexes:
            if results[index]["status"] == "applied":
                results[index]["seq"] = str(seq)
    _fill_unchanged_seqs(conn, writer, seq_by_key)
    for echo, first in writer.echoes:
        echo.update(echo_of(echo["op_id"] or "", first))
    if touched:
        tx.notes.note_changes({e.state.collection for e in touched}, changed_scopes)
    bulk.executemany(conn, _INSERT_RECORD, new_rows)
    bulk.executemany(conn, _UPSERT_RECORD, record_rows)
    bulk.executemany(conn, _DELETE_SCOPES, scope_deletes)
    bulk.executemany(conn, _INSERT_SCOPE, scope_rows)
    bulk.executemany(conn, _DELETE_KEYS, key_deletes)
    bulk.executemany(conn, _INSERT_KEY, key_rows)
    if writer.conflict_rows:
        conn.execute(_INSERT_CONFLICT, writer.conflict_rows)
    bulk.executemany(conn, _INSERT_LOG, [_log_tuple(writer, e) for e in writer.log_rows])
    advance_hlc(conn, "last_hlc", ctx.clock.last)


def _fill_unchanged_seqs(
    conn: Connection, writer: BatchWriter, seq_by_key: dict[tuple[str, str], int]
) -> None:
    """Applied ops that changed nothing report the record's current seq."""
    for result, key in writer.unchanged:
        seq = seq_by_key.get(key)
        if seq is None:
            seq = conn.execute(
                sa.select(records.c.seq).where(
                    records.c.collection == key[0], records.c.id == key[1]
                )
            ).scalar_one_or_none()
        if seq is not None:
            result["seq"] = str(seq)
