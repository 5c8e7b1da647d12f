"""What a pushed batch writes, decided in full before anything is written: a ``BatchPlan``.

``store/push.py`` reads what the batch needs and decides each op (``core/apply.py``),
collecting the outcomes with ``core/planner.py``; ``store/write_plan.py`` writes the plan
in bulk. Seqs are the one thing a plan cannot hold: they are allocated when the writing
starts (``store/sequence.py``), so each answer says which record's seq it reports, and
each record to write takes the next seq in plan order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from waystation.core.hlc import HLC
from waystation.core.protocol import Change, OpResult
from waystation.core.record import RecordState

RecordKey = tuple[str, str]  # (collection, record id)

# The parts made per op or per record (Answer, RecordWrite, LogEntry) are NamedTuples:
# immutable like the frozen dataclasses, and built in under half their time, which a push
# of 5,000 ops notices (measured with the push storm of docs/performance.md).


class Answer(NamedTuple):
    """One op's answer as it stands before seqs are allocated.

    ``result`` is complete but for its seq. An applied op reports the seq of ``seq_of``:
    the new seq when the batch writes that record, else ``stored_seq`` (the record's seq
    as read; None when it has none). A re-send of an op first seen in the same batch
    (``repeats``: that op's answer index) reports the seq that answer gets, if any.
    """

    result: OpResult
    seq_of: RecordKey | None = None
    stored_seq: int | None = None
    repeats: int | None = None


class RecordWrite(NamedTuple):
    """A record the batch changed: its newest state, written under a fresh seq, with its
    scope rows and unique keys.

    ``stored``: it has a row, read and (PostgreSQL) locked, so the row is upserted; a new
    record is inserted, so that a concurrent creation fails instead of being overwritten.
    """

    state: RecordState
    stored: bool
    deleted: bool
    scopes: frozenset[str]
    replace_scopes: bool  # it had scope rows (it existed): they are replaced
    unique_keys: dict[str, str]  # its keys now ({} when deleted)
    old_keys: dict[str, str]  # the keys it held before the batch


@dataclass(frozen=True, slots=True)
class HeldConflict:
    """An open conflict: the op held whole, both sides kept for the reviewer."""

    id: str
    collection: str
    record_id: str
    kind: str  # "MANUAL_REVIEW" | "UNIQUE_VIOLATION"
    op_id: str
    op_kind: str
    hlc: str | None
    base_version: int
    server_fields: dict[str, Any]
    client_fields: dict[str, Any]
    existing_id: str | None


class LogEntry(NamedTuple):
    """An op-log row: the op, its effective clock and its answer (by index: the log keeps
    the answer as sent, seq included). ``duplicate``: a re-send of an op seen before."""

    op: Change
    effective_hlc: str | None
    answer: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Everything a batch writes, in one value.

    ``answers`` has one entry per op, in order. ``records`` are in the order the batch
    first touched them; ``clock`` is the server's clock once every op was decided (at or
    above every clock the batch issued), kept as the clock to restart from.
    """

    user_id: str
    device_id: str | None
    received_at: int
    answers: tuple[Answer, ...]
    records: tuple[RecordWrite, ...]
    conflicts: tuple[HeldConflict, ...]
    op_log: tuple[LogEntry, ...]
    clock: HLC

    def results_before_seqs(self) -> list[OpResult]:
        """The answers as they stand before writing (no seqs): enough to know each op's
        status and error."""
        return [answer.result for answer in self.answers]
