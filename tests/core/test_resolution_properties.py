"""Resolving a conflict, property by property, on plain data (core/resolution.py).

A resolution's planned changes are stamped with a server clock above every clock in play
and merged like any change; a replica that also holds the conflict's held op merges that
one by clock alone (a hub, another client). Whatever the record, the held op and the
reviewer's decision, the outcome must be the one the decision names:

- ``server_wins``: the server's record shows as it was (each field it has, and whether it
  is deleted), and something is written exactly when the held op would have changed that;
- ``client_wins``: the held op's values show (or the record is deleted);
- ``merge``: the reviewer's fields over the held op's show, on the record the merge targets;
- every change is based on its record's current version (never held as stale), and a
  decision that does not fit the conflict is refused naming the request field to fix.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from waystation.core.errors import ValidationError
from waystation.core.hlc import HLC, Clock
from waystation.core.merge import DELETED, merge_delete, merge_upsert
from waystation.core.protocol import BadChange, Change
from waystation.core.record import RecordState
from waystation.core.resolution import (
    EXISTING_GONE,
    ConflictKind,
    HeldOp,
    PlannedChange,
    ResolveRequest,
    plan_resolution,
    stamp_changes,
    stored_resolution,
)

COLLECTION = "prescriptions"
RECORD, EXISTING = "r-held", "r-existing"
FIELDS = ("dose", "frequency", "notes")
COUNTERS = frozenset({"qty"})
EXAMPLES = 300
SERVER_WALL = 10**14  # above every generated clock: the resolution's fresh clocks


def clocks(*nodes: str) -> st.SearchStrategy[str]:
    """Clocks of a few walls, so that they interleave. Two writes never share a clock (the
    node id is part of it), so fields, tombstones and the held op draw from distinct nodes."""
    return st.builds(
        lambda wall, counter, node: f"{wall:015d}-{counter:05d}-{node}",
        st.integers(1, 6),
        st.integers(0, 1),
        st.sampled_from(nodes),
    )


values = st.sampled_from(["a", "b", "c"])


@st.composite
def records(draw: st.DrawFn, record_id: str) -> RecordState | None:
    """None (never written), or a stored record: at least one field (records have
    required fields), perhaps a counter, perhaps a tombstone above or below its fields."""
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, unique=True))
    state = RecordState(COLLECTION, record_id, version=draw(st.integers(1, 9)))
    for name in names:
        state.fields[name] = draw(values)
        state.clocks[name] = draw(clocks("d-a", "d-b"))
    if draw(st.booleans()):
        state.fields["qty"] = draw(st.integers(-3, 3))
        state.clocks["qty"] = draw(clocks("d-a", "d-b"))
    if draw(st.booleans()):
        state.deleted_clock = draw(clocks("d-c"))
    return state


@st.composite
def held_ops(draw: st.DrawFn) -> HeldOp:
    """A held op as the conflicts table keeps it: a MANUAL_REVIEW upsert or delete, or a
    UNIQUE_VIOLATION upsert (with the id of the record holding the key). A held upsert
    touches at least one field; a held delete keeps ``{"_deleted": true}``."""
    kind: ConflictKind = draw(st.sampled_from(["MANUAL_REVIEW", "UNIQUE_VIOLATION"]))
    op = "upsert" if kind == "UNIQUE_VIOLATION" else draw(st.sampled_from(["upsert", "delete"]))
    client_fields: dict[str, Any] = (
        {DELETED: True}
        if op == "delete"
        else draw(st.dictionaries(st.sampled_from(FIELDS), values, min_size=1))
    )
    return HeldOp(
        kind,
        COLLECTION,
        RECORD,
        op,
        draw(clocks("d-held")),
        client_fields,
        EXISTING if kind == "UNIQUE_VIOLATION" else None,
    )


requests = st.builds(
    ResolveRequest,
    resolution=st.sampled_from(["client_wins", "server_wins", "merge"]),
    fields=st.none() | st.dictionaries(st.sampled_from([*FIELDS, DELETED]), values, max_size=2),
    target=st.none() | st.sampled_from(["record", "existing"]),
)


def _merge_held(state: RecordState | None, held: HeldOp) -> RecordState:
    """A replica merging the held op by clock alone."""
    base = state if state is not None else RecordState(COLLECTION, held.record_id)
    if held.op == "delete":
        return merge_delete(base, held.hlc, "d-held", counters=COUNTERS).state
    return merge_upsert(base, held.client_fields, held.hlc, "d-held", counters=COUNTERS).state


def _apply(
    states: dict[str, RecordState | None], planned: list[PlannedChange]
) -> dict[str, RecordState | None]:
    """The planned changes merged with fresh server clocks, above every other clock."""
    out = dict(states)
    for tick, change in enumerate(planned, start=1):
        hlc = f"{SERVER_WALL + tick:015d}-00000-server"
        base = out.get(change.record_id) or RecordState(COLLECTION, change.record_id)
        out[change.record_id] = (
            merge_delete(base, hlc, "server", counters=COUNTERS).state
            if change.op == "delete"
            else merge_upsert(base, change.fields, hlc, "server", counters=COUNTERS).state
        )
    return out


def _shown(state: RecordState | None) -> tuple[bool, dict[str, Any]]:
    """What a record shows: whether it is deleted, and its fields other than counters."""
    if state is None or not state.exists:
        return True, {}
    return state.is_deleted(COUNTERS), {k: v for k, v in state.fields.items() if k not in COUNTERS}


def _plan(
    held: HeldOp, request: ResolveRequest, record: RecordState | None, existing: RecordState | None
) -> list[PlannedChange]:
    return plan_resolution(held, request, record, existing, COUNTERS)


@settings(max_examples=EXAMPLES, deadline=None)
@given(held_ops(), requests, records(RECORD), records(EXISTING))
def test_a_decision_is_planned_on_current_versions_or_refused_naming_the_field(
    held: HeldOp,
    request: ResolveRequest,
    record: RecordState | None,
    existing: RecordState | None,
) -> None:
    try:
        planned = _plan(held, request, record, existing)
    except ValidationError as exc:
        assert exc.details["field"] in ("resolution", "fields", "target", "fields._deleted")
        return
    version = {
        RECORD: record.version if record is not None else 0,
        EXISTING: existing.version if existing is not None else 0,
    }
    for change in planned:
        assert change.base_version == version[change.record_id]
        assert DELETED not in change.fields
        if change.record_id == EXISTING:
            assert request.target == "existing"
    assert len({c.record_id for c in planned}) == len(planned)  # one change per record


@settings(max_examples=EXAMPLES, deadline=None)
@given(held_ops(), records(RECORD), st.booleans())
def test_server_wins_shows_the_server_s_record_whatever_the_order_of_merges(
    held: HeldOp,
    record: RecordState | None,
    held_first: bool,
) -> None:
    planned = _plan(held, ResolveRequest(resolution="server_wins"), record, None)
    assert all(c.record_id == RECORD for c in planned)
    for change in planned:  # only ever the server's own values
        assert record is not None
        assert all(record.fields.get(k) == v for k, v in change.fields.items())
    if held_first:
        final = _apply({RECORD: _merge_held(record, held)}, planned)[RECORD]
    else:
        final = _merge_held(_apply({RECORD: record}, planned)[RECORD], held)
    deleted, shown = _shown(record)
    if record is None or not record.exists:
        assert planned == []  # the held op created it: nothing of the server's to keep
        return
    final_deleted, final_shown = _shown(final)
    assert final_deleted == deleted
    if not deleted:
        assert {k: final_shown.get(k) for k in shown} == shown
    # written exactly when the held op alone would change what the server shows
    alone = _merge_held(record, held)
    leaked = alone.is_deleted(COUNTERS) != deleted or any(
        alone.clocks.get(k) != record.clocks.get(k) for k in shown if not deleted
    )
    assert bool(planned) == leaked


@settings(max_examples=EXAMPLES, deadline=None)
@given(held_ops(), records(RECORD))
def test_client_wins_carries_out_the_held_op(held: HeldOp, record: RecordState | None) -> None:
    request = ResolveRequest(resolution="client_wins")
    if held.kind == "UNIQUE_VIOLATION":  # the key is taken: the held op cannot stand
        with pytest.raises(ValidationError) as refused:
            _plan(held, request, record, None)
        assert refused.value.details == {"field": "resolution"}
        return
    planned = _plan(held, request, record, None)
    deleted, shown = _shown(_apply({RECORD: record}, planned)[RECORD])
    if held.op == "delete":
        assert deleted
    else:
        assert not deleted
        assert {k: shown.get(k) for k in held.client_fields} == held.client_fields


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    held_ops(),
    st.dictionaries(st.sampled_from(FIELDS), values, min_size=1),
    st.sampled_from([None, "record", "existing"]),
    records(RECORD),
    records(EXISTING),
)
def test_a_merge_shows_the_reviewer_s_fields_over_the_held_ones_where_it_lands(
    held: HeldOp,
    fields: dict[str, Any],
    target: str | None,
    record: RecordState | None,
    existing: RecordState | None,
) -> None:
    assume(held.op == "upsert")  # a held delete is kept or carried out, never merged
    request = ResolveRequest(resolution="merge", fields=fields, target=target)
    if held.kind == "MANUAL_REVIEW" and target is not None:
        with pytest.raises(ValidationError) as refused:
            _plan(held, request, record, existing)
        assert refused.value.details == {"field": "target"}
        return
    landing = EXISTING if target == "existing" else RECORD
    if landing == EXISTING and _shown(existing)[0]:  # gone, or deleted
        with pytest.raises(ValidationError) as refused:
            _plan(held, request, record, existing)
        assert refused.value.message == EXISTING_GONE
        assert refused.value.details == {"field": "target"}
        return
    planned = _plan(held, request, record, existing)
    after = _apply({RECORD: record, EXISTING: existing}, planned)
    deleted, shown = _shown(after[landing])
    merged = {**held.client_fields, **fields}
    assert not deleted
    assert {k: shown.get(k) for k in merged} == merged
    if landing == EXISTING:  # the held op is dropped: its record stays the server's
        assert _plan(held, ResolveRequest(resolution="server_wins"), record, None) == [
            c for c in planned if c.record_id == RECORD
        ]
        assert stored_resolution(request) == "merge_existing"


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    held_ops(),
    st.sampled_from(["client_wins", "server_wins"]),
    st.sampled_from(["fields", "target"]),
    records(RECORD),
)
def test_only_a_merge_takes_fields_or_a_target(
    held: HeldOp,
    resolution: str,
    extra: str,
    record: RecordState | None,
) -> None:
    body: dict[str, Any] = {
        "resolution": resolution,
        extra: {"dose": "a"} if extra == "fields" else "record",
    }
    with pytest.raises(ValidationError) as refused:
        _plan(held, ResolveRequest(**body), record, None)
    assert refused.value.details == {"field": extra}


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(
        st.builds(
            PlannedChange,
            st.sampled_from([RECORD, EXISTING]),
            st.sampled_from(["upsert", "delete"]),
            st.dictionaries(st.sampled_from(FIELDS), values),
            st.integers(0, 9),
        ),
        max_size=3,
    )
)
def test_stamped_changes_carry_the_plan_with_fresh_ids_and_rising_server_clocks(
    planned: list[PlannedChange],
) -> None:
    clock = Clock("s-test")
    before = clock.send()
    changes = stamp_changes(COLLECTION, planned, clock)
    assert all(isinstance(c, Change) for c in changes)
    stamped = [c for c in changes if isinstance(c, Change)]
    assert [(c.collection, c.record_id, c.op, c.fields, c.base_version) for c in stamped] == [
        (COLLECTION, p.record_id, p.op, p.fields, p.base_version) for p in planned
    ]
    assert len({c.op_id for c in stamped}) == len(stamped)
    hlcs = [HLC.parse(c.hlc) for c in stamped]
    assert all(h.node == "s-test" for h in hlcs)
    assert sorted(hlcs) == hlcs and all(h > before for h in hlcs)
    assert len(set(hlcs)) == len(hlcs)


def test_fields_a_push_would_refuse_make_a_bad_change() -> None:
    deep: Any = "a"
    for _ in range(10):
        deep = {"a": deep}
    [bad] = stamp_changes(
        COLLECTION, [PlannedChange(RECORD, "upsert", {"dose": deep})], Clock("s-test")
    )
    assert isinstance(bad, BadChange)
    assert bad.error.details["field"].startswith("fields.dose.a")
