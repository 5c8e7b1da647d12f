"""Decide what one pushed op does to its record: the server's per-op pipeline, pure.

``decide`` validates the op against the schema, authorises it, fixes its effective clock
(re-stamping one too far ahead), applies the collection's policy and merges. It reads the
record's current state and the server's clock and returns a ``Verdict``; the store writes
it. Unique keys are the one check that needs the database, so the store makes it after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from waystation.core.access import Principal, check_role, check_scopes
from waystation.core.errors import NotFound, ValidationError, WaystationError
from waystation.core.hlc import HLC, Clock, is_too_far_ahead
from waystation.core.merge import (
    DELETED,
    MergeOutcome,
    fields_moved_by_others,
    merge_delete,
    merge_increment,
    merge_upsert,
)
from waystation.core.protocol import Change
from waystation.core.record import RecordState
from waystation.core.schema import CollectionSpec, Schema
from waystation.core.validation import (
    check_record_size,
    check_stored_numbers,
    validate_increment,
    validate_upsert,
)

SERVER_DEVICE = "server"
DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


@dataclass(slots=True)
class ConflictDraft:
    """An open conflict to record: the op is held whole, both sides kept for the reviewer."""

    code: Literal["MANUAL_REVIEW", "UNIQUE_VIOLATION"]
    message: str
    server_fields: dict[str, Any]
    client_fields: dict[str, Any]
    existing_id: str | None = None
    # False when the pusher may not see the record holding the key: its answer then names
    # neither that record's id nor its fields (the conflicts row keeps both for reviewers).
    existing_visible: bool = True


@dataclass(slots=True)
class Verdict:
    status: Literal["applied", "conflict", "rejected"]
    state: RecordState | None = None
    changed: bool = False
    hlc: str | None = None
    restamped: bool = False
    superseded: list[str] = field(default_factory=list)
    error: WaystationError | None = None
    conflict: ConflictDraft | None = None

    @classmethod
    def rejected(cls, error: WaystationError) -> Verdict:
        return cls("rejected", error=error)


@dataclass(slots=True)
class ApplyContext:
    schema: Schema
    principal: Principal
    clock: Clock
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS

    @property
    def device(self) -> str:
        return self.principal.device_id or SERVER_DEVICE


def decide(ctx: ApplyContext, op: Change, state: RecordState | None) -> Verdict:
    """The verdict for ``op`` on ``state`` (None when the record was never written)."""
    try:
        return _decide(ctx, op, state)
    except WaystationError as exc:
        return Verdict.rejected(exc)


def _decide(ctx: ApplyContext, op: Change, state: RecordState | None) -> Verdict:
    spec = ctx.schema.get(op.collection)
    if spec is None:
        raise ValidationError(f"unknown collection {op.collection!r}", {"field": "collection"})
    hlc = HLC.parse(op.hlc)
    # A record outside the caller's read scopes is, for every answer, a record that does not
    # exist: its existence is itself information about a patient (docs/security.md).
    hidden = state is not None and state.exists and not may_read(ctx.principal, spec, state)
    exists = state is not None and state.exists and not hidden
    current = state if state is not None and exists else RecordState(op.collection, op.record_id)
    check_role(ctx.principal, spec, op.fields, creating=not exists, deleting=op.op == "delete")
    if exists:
        check_stored_numbers(spec, current.fields)
    candidate = _validate(spec, op, current, exists)
    check_scopes(
        ctx.principal,
        spec,
        spec.scopes_of(op.record_id, current.fields) if exists else None,
        spec.scopes_of(op.record_id, candidate),
    )
    if hidden:
        # A create whose id another record holds can be neither applied nor dropped; the
        # answer is the one any unusable id gets, and never says whose or where.
        raise id_unavailable(op.record_id)
    effective, restamped = _effective_clock(ctx, hlc)
    verdict = _apply_policy(ctx, spec, op, current, effective, restamped)
    if op.op == "upsert" and verdict.changed and verdict.state is not None:
        check_record_size(spec, verdict.state.fields)
    return verdict


def may_read(principal: Principal, spec: CollectionSpec, state: RecordState) -> bool:
    """Whether the caller may see ``state`` (as it is stored: its scopes from its fields)."""
    return principal.can_see(spec.scopes_of(state.id, state.fields))


def visible_version(
    principal: Principal, spec: CollectionSpec | None, state: RecordState | None
) -> int:
    """The record's version as the caller may know it: 0 for a record it may not see."""
    if state is None or spec is None or not may_read(principal, spec, state):
        return 0
    return state.version


def id_unavailable(record_id: str) -> ValidationError:
    """The one answer for a create whose id cannot be used."""
    return ValidationError(
        f"record id {record_id} cannot be used for a new record; make a fresh id (UUIDv7)",
        {"field": "record_id"},
    )


def _validate(
    spec: CollectionSpec, op: Change, current: RecordState, exists: bool
) -> dict[str, Any]:
    """Schema checks for the op kind; returns the fields the record would have after it."""
    if op.op == "upsert":
        if not exists and op.base_version > 0:
            raise NotFound(
                f"{spec.name}/{op.record_id} does not exist on the server "
                f"(partial update with base_version {op.base_version})"
            )
        validate_upsert(spec, op.fields, creating=not exists)
        return {**current.fields, **op.fields}
    if not exists:
        verb = "deleted" if op.op == "delete" else "incremented"
        raise NotFound(f"{spec.name}/{op.record_id} does not exist, so it cannot be {verb}")
    if op.op == "increment":
        validate_increment(spec, op.fields, current.fields)
    elif op.fields:
        raise ValidationError("a delete carries no fields", {"field": "fields"})
    return dict(current.fields)


def _effective_clock(ctx: ApplyContext, hlc: HLC) -> tuple[str, bool]:
    """Re-stamp a clock too far ahead with the server's own; otherwise fold it in."""
    if is_too_far_ahead(hlc, ctx.clock.physical_ms(), ctx.max_clock_skew_ms):
        return str(ctx.clock.send()), True
    ctx.clock.receive(hlc)
    return str(hlc), False


def _apply_policy(
    ctx: ApplyContext,
    spec: CollectionSpec,
    op: Change,
    current: RecordState,
    hlc: str,
    restamped: bool,
) -> Verdict:
    """The collection's policy, then merge. Increments and creates have no policy to apply:
    counters add up whatever happened, and a record nobody has written cannot be stale."""
    device = ctx.device
    fields = dict(op.fields)
    superseded: list[str] = []
    if current.exists and op.op != "increment":
        if spec.policy in ("manual", "server_wins"):
            stale = _stale_change(spec, op, current, device)
            if stale is not None:
                moved, shown = stale
                if spec.policy == "manual":
                    return _held(op, current, moved, shown, hlc, restamped)
                if op.op == "delete" or DELETED in moved:
                    # the server's side of the record (alive, or deleted) stands whole
                    lost = [DELETED] if op.op == "delete" else list(fields)
                    return Verdict(
                        "applied", state=current, hlc=hlc, restamped=restamped, superseded=lost
                    )
                superseded = [k for k in fields if k in moved]
                fields = {k: v for k, v in fields.items() if k not in moved}
        elif spec.policy == "client_wins" and _would_lose(spec, op, current, hlc):
            # the client's write must take effect: give it a clock above every other
            hlc, restamped = str(ctx.clock.send()), True
    outcome = _merge(spec, op, current, fields, hlc, device)
    return Verdict(
        "applied",
        state=outcome.state,
        changed=outcome.changed,
        hlc=hlc,
        restamped=restamped,
        superseded=superseded + outcome.superseded,
    )


def _stale_change(
    spec: CollectionSpec, op: Change, current: RecordState, device: str
) -> tuple[list[str], list[str]] | None:
    """What another device changed on the server since the op's ``base_version`` that the
    op contradicts: ``(moved fields, fields to show the reviewer)``, or None.

    An upsert contradicts changes of its own fields, and a delete by another device when the
    record is deleted now. A delete contradicts changes of any field of a live record; a
    delete of a record already deleted contradicts nothing (its intent stands). Monotonic
    flags never count: once true they stay true whatever anyone wrote.
    """
    deleted = current.is_deleted(spec.counters)
    if op.op == "delete":
        if deleted:
            return None
        shown = sorted(set(current.clocks) - spec.counters)
        names = [k for k in shown if k not in spec.monotonic]
    else:
        shown = list(op.fields)
        names = [k for k in shown if k not in spec.monotonic]
        if deleted:
            names.append(DELETED)
    moved = fields_moved_by_others(current, names, op.base_version, device)
    return (moved, shown) if moved else None


def _held(
    op: Change,
    current: RecordState,
    moved: list[str],
    shown: list[str],
    hlc: str,
    restamped: bool,
) -> Verdict:
    """``manual``: hold the whole op (a dose and a frequency belong together) for review."""
    what = ", ".join("the record was deleted" if k == DELETED else k for k in moved)
    server_fields = {k: current.fields.get(k) for k in shown}
    if DELETED in moved:
        server_fields[DELETED] = True
    return Verdict(
        "conflict",
        state=current,
        hlc=hlc,
        restamped=restamped,
        conflict=ConflictDraft(
            "MANUAL_REVIEW",
            f"changed on the server by another device since version {op.base_version} "
            f"({what}); held for review",
            server_fields=server_fields,
            client_fields=dict(op.fields) if op.op == "upsert" else {DELETED: True},
        ),
    )


def _would_lose(spec: CollectionSpec, op: Change, current: RecordState, hlc: str) -> bool:
    """``client_wins``: whether a standing clock (a field's, or the tombstone keeping the
    record deleted) is at or above the op's, so that plain merge would not let it through.
    Monotonic flags are left out: a ``true`` takes effect anyway, a ``false`` never does."""
    if op.op == "delete":
        names: list[str] = sorted(set(current.clocks) - spec.counters)
        if current.deleted_clock is not None and current.deleted_clock >= hlc:
            return True
    else:
        names = list(op.fields)
        if (
            current.is_deleted(spec.counters)
            and current.deleted_clock is not None
            and current.deleted_clock >= hlc
        ):
            return True
    return any(current.clocks.get(k, "") >= hlc for k in names if k not in spec.monotonic)


def _merge(
    spec: CollectionSpec,
    op: Change,
    current: RecordState,
    fields: dict[str, Any],
    hlc: str,
    device: str,
) -> MergeOutcome:
    if op.op == "upsert":
        return merge_upsert(
            current, fields, hlc, device, monotonic=spec.monotonic, counters=spec.counters
        )
    if op.op == "delete":
        return merge_delete(current, hlc, device, counters=spec.counters)
    return merge_increment(current, fields, hlc, device)
