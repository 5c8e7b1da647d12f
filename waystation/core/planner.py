"""Collecting a batch's outcomes, op by op, into a ``BatchPlan`` (``core/plan.py``): pure.

``store/push.py`` decides each op (``core/apply.py``) and hands the verdict here; the
builder turns it into the op's answer, its op-log entry, an open conflict, or a record to
write, and keeps what later ops of the same batch must see: each record's newest state,
the unique keys the batch claimed or released, and the op ids it has answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waystation.core.apply import ApplyContext, Verdict
from waystation.core.errors import ValidationError, WaystationError
from waystation.core.ids import uuid7
from waystation.core.plan import (
    Answer,
    BatchPlan,
    HeldConflict,
    LogEntry,
    RecordKey,
    RecordWrite,
)
from waystation.core.protocol import Change, OpResult
from waystation.core.record import RecordState
from waystation.core.schema import CollectionSpec

KeySlot = tuple[str, str, str]  # (collection, key name, key value) of a unique key


@dataclass(frozen=True, slots=True)
class Earlier:
    """The first outcome of an op id answered before: who sent it and what it was told.
    ``answer`` is its answer's index when it was first seen in this same batch (its seq
    is still to come); None when an earlier batch answered it."""

    user_id: str
    result: OpResult
    answer: int | None = None


@dataclass(slots=True)
class _Touched:
    existed: bool  # it existed before the batch
    old_keys: dict[str, str]  # the unique keys it held before the batch
    state: RecordState  # its newest state ...
    deleted: bool  # ... whether that state is deleted
    keys: dict[str, str]  # ... and the unique keys it holds


class PlanBuilder:
    """The batch so far. ``states`` are the records as read (and, on PostgreSQL, locked),
    ``stored_seqs`` their seqs."""

    def __init__(
        self,
        ctx: ApplyContext,
        received_at: int,
        states: Mapping[RecordKey, RecordState],
        stored_seqs: Mapping[RecordKey, int],
    ) -> None:
        self.ctx = ctx
        self.received_at = received_at
        self._collections = ctx.schema.collections
        self._states = dict(states)
        self._stored = frozenset(states)
        self._stored_seqs = stored_seqs
        self._answers: list[Answer] = []
        self._log: list[LogEntry] = []
        self._conflicts: list[HeldConflict] = []
        self._touched: dict[RecordKey, _Touched] = {}
        # unique keys claimed or released within this batch: slot -> record id, or None
        self._batch_keys: dict[KeySlot, str | None] = {}
        self._seen: dict[str, int] = {}  # op id -> its answer's index

    # -- what later ops of the batch see ------------------------------------------------

    def state_of(self, key: RecordKey) -> RecordState | None:
        """The record's newest state in this batch (None: never written)."""
        return self._states.get(key)

    def seen(self, op_id: str) -> Earlier | None:
        """The outcome of ``op_id`` when an earlier op of this batch had it."""
        index = self._seen.get(op_id)
        if index is None:
            return None
        return Earlier(self.ctx.principal.user_id, self._answers[index].result, index)

    @property
    def batch_keys(self) -> Mapping[KeySlot, str | None]:
        """Unique keys this batch claimed (the record id) or released (None)."""
        return self._batch_keys

    def written_fields(self, key: RecordKey) -> dict[str, Any] | None:
        """The fields of a record this batch changed (None when it changed none)."""
        touched = self._touched.get(key)
        return dict(touched.state.fields) if touched is not None else None

    # -- recording outcomes ---------------------------------------------------------------

    def reject(self, op_id: str | None, error: WaystationError) -> None:
        """An op that did not parse: rejected alone, and not logged (it has no op)."""
        self._answers.append(Answer(rejected(op_id, error)))

    def repeat(self, op: Change, earlier: Earlier) -> None:
        """A re-sent op: repeat its first outcome (or refuse an op id of another user)."""
        index = len(self._answers)
        if earlier.user_id != self.ctx.principal.user_id:
            error = ValidationError(
                f"op id {op.op_id} was already used by another user; make a fresh op id",
                {"field": "op_id"},
            )
            answer = Answer(rejected(op.op_id, error))
        else:
            answer = Answer(echo_of(op.op_id, earlier.result), repeats=earlier.answer)
        self._answers.append(answer)
        self._log.append(LogEntry(op, None, index, True))

    def record(self, op: Change, before: RecordState | None, verdict: Verdict) -> None:
        """Turn ``op``'s verdict into its answer, and remember what must be written.
        ``before`` is the record's state the op was decided on."""
        index = len(self._answers)
        key = (op.collection, op.record_id)
        after = verdict.state
        if verdict.status == "rejected":
            assert verdict.error is not None
            answer = Answer(rejected(op.op_id, verdict.error))
        elif verdict.status == "conflict":
            result, after = self._open_conflict(op, before, verdict)
            answer = Answer(result)
        else:
            assert verdict.state is not None
            result = {"op_id": op.op_id, "status": "applied", "version": verdict.state.version}
            if verdict.hlc is not None:
                result["hlc"] = verdict.hlc
            if verdict.restamped:
                result["restamped"] = True
            if verdict.superseded:
                result["superseded"] = verdict.superseded
            if verdict.changed:
                self._touch(self._collections[op.collection], before, verdict.state)
            answer = Answer(result, seq_of=key, stored_seq=self._stored_seqs.get(key))
        self._answers.append(answer)
        self._log.append(LogEntry(op, verdict.hlc, index, False))
        if after is not None and (verdict.changed or verdict.status == "conflict"):
            self._states[key] = after
        self._seen[op.op_id] = index

    def finish(self) -> BatchPlan:
        """The plan of everything recorded."""
        collections = self._collections
        stored = self._stored
        records = [
            RecordWrite(
                t.state,
                key in stored,
                t.deleted,
                collections[key[0]].scopes_of(key[1], t.state.fields),
                t.existed,
                t.keys,
                t.old_keys,
            )
            for key, t in self._touched.items()
        ]
        principal = self.ctx.principal
        return BatchPlan(
            user_id=principal.user_id,
            device_id=principal.device_id,
            received_at=self.received_at,
            answers=tuple(self._answers),
            records=tuple(records),
            conflicts=tuple(self._conflicts),
            op_log=tuple(self._log),
            clock=self.ctx.clock.last,
        )

    def _open_conflict(
        self, op: Change, before: RecordState | None, verdict: Verdict
    ) -> tuple[OpResult, RecordState | None]:
        """Hold the op whole in a new open conflict; a manual one flags the record.
        Returns the answer and the record's state after it."""
        draft = verdict.conflict
        assert draft is not None
        conflict_id = uuid7()
        self._conflicts.append(
            HeldConflict(
                id=conflict_id,
                collection=op.collection,
                record_id=op.record_id,
                kind=draft.code,
                op_id=op.op_id,
                op_kind=op.op,
                hlc=verdict.hlc,
                base_version=op.base_version,
                server_fields=draft.server_fields,
                client_fields=draft.client_fields,
                existing_id=draft.existing_id,
            )
        )
        after = verdict.state
        if draft.code == "MANUAL_REVIEW" and after is not None and not after.conflict:
            after = after.copy()
            after.conflict = True
            self._touch(self._collections[op.collection], before, after)
        result: OpResult = {
            "op_id": op.op_id,
            "status": "conflict",
            "conflict_id": conflict_id,
            "error": {
                "code": draft.code,
                "message": draft.message,
                "details": (
                    {"existing_id": draft.existing_id}
                    if draft.existing_id and draft.existing_visible
                    else {}
                ),
            },
        }
        return result, after

    def _touch(self, spec: CollectionSpec, before: RecordState | None, state: RecordState) -> None:
        key = (state.collection, state.id)
        released = live_keys(spec, before)
        deleted = state.is_deleted(spec.counters)
        keys = {} if deleted or not state.exists else spec.unique_keys_of(state.fields)
        entry = self._touched.get(key)
        if entry is None:
            self._touched[key] = _Touched(
                before is not None and before.exists, released, state, deleted, keys
            )
        else:
            entry.state, entry.deleted, entry.keys = state, deleted, keys
        for name, value in released.items():
            slot = (state.collection, name, value)
            if self._batch_keys.get(slot, state.id) == state.id:
                self._batch_keys[slot] = None  # released (re-claimed just below if kept)
        for name, value in keys.items():
            self._batch_keys[(state.collection, name, value)] = state.id


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


def rejected(op_id: str | None, error: WaystationError) -> OpResult:
    """A rejection's answer."""
    return {
        "op_id": op_id,
        "status": "rejected",
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }


def live_keys(spec: CollectionSpec, state: RecordState | None) -> dict[str, str]:
    """The unique keys a record holds: none unless it exists and is not deleted."""
    if state is None or not state.exists or state.is_deleted(spec.counters):
        return {}
    return spec.unique_keys_of(state.fields)
