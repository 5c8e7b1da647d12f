"""Resolving a held conflict: which changes a reviewer's decision makes, pure.

A conflict holds one op whole (``MANUAL_REVIEW``: another device changed what it touches;
``UNIQUE_VIOLATION``: its new state would take a unique key another live record holds).
The reviewer's decision becomes ordinary changes that the store stamps with fresh server
clocks and applies like any push, so every replica pulls them:

=================  ===================================  ====================================
resolution         MANUAL_REVIEW                        UNIQUE_VIOLATION
=================  ===================================  ====================================
``client_wins``    the held op, re-applied              refused (400): the key is taken
``server_wins``    the server's values stand            discard: the held op is dropped
``merge``          the held op with ``fields`` over it  ``target: "record"``: the held op with
                   (refused for a held delete)          ``fields`` over it (change the key to
                                                        keep both); ``target: "existing"``:
                                                        the held op's fields and ``fields``
                                                        applied to the existing record, the
                                                        held op dropped
=================  ===================================  ====================================

``server_wins`` (and dropping the held op) re-asserts, with a fresh clock, the server's
values of the fields the held op would beat on clock alone, so that a replica merging by
clock (a hub, another client) can never let the held value through. When no field needs
it, nothing is written; the record still gets a new seq when its conflict flag clears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from waystation.core.errors import ValidationError
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.merge import DELETED
from waystation.core.protocol import BadChange, Change, make_change
from waystation.core.record import RecordState

# One answer whether the record holding the key was deleted or is outside the reviewer's
# scopes: it never names that record (docs/security.md).
EXISTING_GONE = (
    "the record that held the key is gone or outside your scopes; merge into the "
    'held record instead (target "record")'
)

Resolution = Literal["client_wins", "server_wins", "merge"]
Target = Literal["record", "existing"]
ConflictKind = Literal["MANUAL_REVIEW", "UNIQUE_VIOLATION"]


class ResolveRequest(BaseModel):
    """``POST /v1/conflicts/{id}/resolve``.

    ``fields`` (merge only) are laid over the held op's fields. ``target`` (merge of a
    UNIQUE_VIOLATION only) says which record the merge lands on: the held op's own record
    (``record``, the default: keep both records, normally with a changed key) or the record
    that already holds the key (``existing``).
    """

    model_config = ConfigDict(extra="forbid")

    resolution: Resolution
    fields: dict[str, Any] | None = None
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class HeldOp:
    """The op a conflict holds, as the conflicts table keeps it."""

    kind: ConflictKind
    collection: str
    record_id: str
    op: str  # "upsert" | "delete"
    hlc: str  # its effective clock
    client_fields: dict[str, Any]
    existing_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One change to stamp and apply: ``base_version`` is the record's current version, so
    the resolution itself is never held as stale."""

    record_id: str
    op: Literal["upsert", "delete"]
    fields: dict[str, Any] = field(default_factory=dict)
    base_version: int = 0


def stored_resolution(request: ResolveRequest) -> str:
    """The value kept in the conflicts table (``merge_existing`` for a merge into the
    existing record)."""
    if request.resolution == "merge" and request.target == "existing":
        return "merge_existing"
    return request.resolution


def plan_resolution(
    held: HeldOp,
    request: ResolveRequest,
    record: RecordState | None,
    existing: RecordState | None,
    counters: frozenset[str] = frozenset(),
) -> list[PlannedChange]:
    """The changes that carry out ``request``; raises ValidationError for a decision that
    does not fit the conflict (``details.field`` names the request field).

    ``record`` is the held op's record as the server has it now (None when the held op
    would have created it); ``existing`` the record holding the key of a UNIQUE_VIOLATION.
    """
    _check_shape(held, request)
    if request.resolution == "server_wins":
        return _reassert(held, record, counters)
    if request.resolution == "client_wins":
        if held.op == "delete":
            if record is None or not record.exists:
                return []  # nothing left to delete
            return [PlannedChange(held.record_id, "delete", base_version=record.version)]
        return [_upsert(held.record_id, dict(held.client_fields), record)]
    merged = {**held.client_fields, **(request.fields or {})}
    if request.target == "existing":
        if existing is None or not existing.exists or existing.is_deleted(counters):
            raise ValidationError(EXISTING_GONE, {"field": "target"})
        assert held.existing_id is not None
        return [*_reassert(held, record, counters), _upsert(held.existing_id, merged, existing)]
    return [_upsert(held.record_id, merged, record)]


def stamp_changes(
    collection: str, planned: Sequence[PlannedChange], clock: Clock
) -> list[Change | BadChange]:
    """The planned changes as ops for the push path: each with a fresh op id and a fresh
    clock of the server's, in order. Fields a push would refuse (a merge's ``fields`` nested
    too deep, say) make a BadChange, which the push path rejects."""
    return [
        make_change(
            op_id=uuid7(),
            collection=collection,
            record_id=c.record_id,
            op=c.op,
            fields=c.fields,
            hlc=str(clock.send()),
            base_version=c.base_version,
        )
        for c in planned
    ]


def _check_shape(held: HeldOp, request: ResolveRequest) -> None:
    if request.resolution != "merge":
        if request.fields is not None or request.target is not None:
            raise ValidationError(
                f"{request.resolution} takes no 'fields' or 'target' (those are for merge)",
                {"field": "fields" if request.fields is not None else "target"},
            )
        if request.resolution == "client_wins" and held.kind == "UNIQUE_VIOLATION":
            raise ValidationError(
                "client_wins cannot resolve a UNIQUE_VIOLATION: another record holds the "
                'key. Merge into it (merge with target "existing"), keep both by changing '
                "the key (merge with the new key in fields), or discard (server_wins)",
                {"field": "resolution"},
            )
        return
    if DELETED in (request.fields or {}):
        raise ValidationError("fields cannot name '_deleted'", {"field": "fields._deleted"})
    if held.kind == "MANUAL_REVIEW":
        if request.target is not None:
            raise ValidationError(
                "'target' is only for UNIQUE_VIOLATION conflicts", {"field": "target"}
            )
        if held.op == "delete":
            raise ValidationError(
                "a held delete is resolved with client_wins (delete the record) or "
                "server_wins (keep it); edit the record afterwards to change its fields",
                {"field": "resolution"},
            )
        if not request.fields:
            raise ValidationError(
                "merge needs the merged values in 'fields' (client_wins applies the held "
                "op as it is)",
                {"field": "fields"},
            )


def _version(state: RecordState | None) -> int:
    return state.version if state is not None else 0


def _upsert(record_id: str, fields: dict[str, Any], state: RecordState | None) -> PlannedChange:
    return PlannedChange(record_id, "upsert", fields, _version(state))


def _reassert(
    held: HeldOp, record: RecordState | None, counters: frozenset[str]
) -> list[PlannedChange]:
    """Drop the held op: re-assert with a fresh clock whatever of the server's record the
    held op would beat on clock alone (nothing when the held op created the record)."""
    if record is None or not record.exists:
        return []
    version = record.version
    if record.is_deleted(counters):
        assert record.deleted_clock is not None
        if held.op == "upsert" and held.hlc > record.deleted_clock:
            return [PlannedChange(held.record_id, "delete", base_version=version)]
        return []
    live = {k: c for k, c in record.clocks.items() if k not in counters}
    if held.op == "delete":
        if live and all(c < held.hlc for c in live.values()):
            return [_upsert(held.record_id, {k: record.fields.get(k) for k in live}, record)]
        return []
    beaten = {
        k: record.fields.get(k) for k in held.client_fields if k in live and live[k] < held.hlc
    }
    return [_upsert(held.record_id, beaten, record)] if beaten else []
