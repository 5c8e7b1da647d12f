"""Merge one change into a record: pure functions on plain data, no clock, no I/O.

The rules (docs/conflicts.md, "The rules every policy shares"; docs/protocol.md, "Merge
rules in brief"):

- upsert, per field: the higher HLC wins. Ties cannot happen between different writes
  because the node id is part of the clock; an equal clock is the same write re-delivered,
  which changes nothing (idempotence).
- monotonic flags: the value is the OR of everything seen, the clock the max; a lower-clock
  ``true`` still takes effect, a ``false`` over ``true`` is superseded.
- delete: a tombstone clock, the max of all deletes seen. The record is deleted while that
  clock is above every non-counter field clock, so an upsert with a higher clock resurrects
  it with all its fields. An upsert below the tombstone is merged into the hidden fields
  (so every replica holds the same state) but reported superseded: nothing of it shows.
- increment: deltas add up; counters ignore tombstones (they neither reset on delete nor
  resurrect the record).

Each of these is commutative, associative and idempotent per field, which is why replicas
converge whatever the order or duplication of delivery. Order-dependent policy decisions
(manual review, server_wins, client_wins, unique keys) are made by the caller before merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from waystation.core.record import RecordState

# The pseudo-field a delete is reported and versioned under (``superseded``, the per-field
# version and device that ``manual`` and ``server_wins`` read). Field names cannot start
# with an underscore, so it never collides with a real one.
DELETED = "_deleted"


@dataclass(slots=True)
class MergeOutcome:
    """The new state, and which fields of the change took effect or lost."""

    state: RecordState
    changed: bool
    superseded: list[str] = field(default_factory=list)


def _bump(state: RecordState, changed_fields: Iterable[str], device: str) -> None:
    state.version += 1
    for name in changed_fields:
        state.field_versions[name] = state.version
        state.field_devices[name] = device


def merge_upsert(
    state: RecordState,
    fields: Mapping[str, Any],
    hlc: str,
    device: str,
    *,
    monotonic: frozenset[str] = frozenset(),
    counters: frozenset[str] = frozenset(),
) -> MergeOutcome:
    """Apply an upsert field by field; returns a new state (``state`` is not modified).

    ``superseded`` lists the fields that lost to a higher clock, a ``false`` that lost to a
    monotonic ``true``, and every field when a newer tombstone keeps the record deleted.
    """
    new = state.copy()
    changed: list[str] = []
    superseded: list[str] = []
    for name, value in fields.items():
        current = new.clocks.get(name)
        if name in monotonic:
            old_value = new.fields.get(name)
            merged = bool(old_value) or bool(value)
            newest = hlc if current is None or hlc > current else current
            if merged is not old_value or newest != current:
                new.fields[name] = merged
                new.clocks[name] = newest
                changed.append(name)
            if merged and not value:
                superseded.append(name)
            continue
        if current is None or hlc > current:
            new.fields[name] = value
            new.clocks[name] = hlc
            changed.append(name)
        elif hlc < current:
            superseded.append(name)
    if changed:
        _bump(new, changed, device)
    if new.is_deleted(counters):
        superseded = list(fields)  # held under a newer tombstone: nothing of it shows
    return MergeOutcome(new, bool(changed), superseded)


def merge_delete(
    state: RecordState, hlc: str, device: str, *, counters: frozenset[str] = frozenset()
) -> MergeOutcome:
    """Raise the tombstone clock to ``hlc`` (the highest delete holds it).

    Superseded when a later delete already holds the tombstone, or when a newer field write
    keeps the record alive (the tombstone clock is raised all the same, so replicas
    converge). A delete that raises the tombstone records its version and device under
    ``DELETED``, as a field write does.
    """
    new = state.copy()
    raised = new.deleted_clock is None or hlc > new.deleted_clock
    if raised:
        new.deleted_clock = hlc
        _bump(new, (DELETED,), device)
    assert new.deleted_clock is not None
    lost = hlc < new.deleted_clock or not new.is_deleted(counters)
    return MergeOutcome(new, raised, [DELETED] if lost else [])


def merge_increment(
    state: RecordState, deltas: Mapping[str, int], hlc: str, device: str
) -> MergeOutcome:
    """Add each delta to its counter (a missing counter starts at 0)."""
    new = state.copy()
    touched = [name for name, delta in deltas.items() if delta != 0]
    for name in touched:
        new.fields[name] = int(new.fields.get(name) or 0) + deltas[name]
        if new.clocks.get(name) is None or hlc > new.clocks[name]:
            new.clocks[name] = hlc
    if touched:
        _bump(new, touched, device)
    return MergeOutcome(new, bool(touched))


def fields_moved_by_others(
    state: RecordState, names: Iterable[str], base_version: int, device: str
) -> list[str]:
    """Fields changed on the server by another device after ``base_version``.

    ``manual`` holds an op touching any of them; ``server_wins`` drops those fields. A
    device's own consecutive offline edits never count against it.
    """
    return [
        name
        for name in names
        if state.field_versions.get(name, 0) > base_version
        and state.field_devices.get(name) != device
    ]
