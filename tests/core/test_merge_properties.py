"""Merge converges: any order, any duplication of delivery gives the same record.

Replicas (the server, hubs, every device) merge the same changes in different orders and
sometimes twice (a lost ack makes a device re-send). Per field the higher clock wins,
monotonic flags OR together, tombstones take the highest clock and counters add up; each is
commutative, associative and idempotent, so every replica ends with the same record. The
model below computes that record directly from the set of changes, independent of merge.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from waystation.core.hlc import HLC
from waystation.core.merge import MergeOutcome, merge_delete, merge_increment, merge_upsert
from waystation.core.record import RecordState

T0 = 1_764_496_800_000
LWW_FIELDS = ("dose", "frequency", "notes")
MONOTONIC = frozenset({"read"})
COUNTERS = frozenset({"quantity"})
NODES = ("d-a", "d-b", "server")
EXAMPLES = 300


@dataclass(frozen=True)
class Op:
    kind: str  # "upsert" | "delete" | "increment"
    body: dict[str, Any]
    hlc: str
    device: str


def apply(state: RecordState, op: Op) -> MergeOutcome:
    if op.kind == "upsert":
        return merge_upsert(state, op.body, op.hlc, op.device, monotonic=MONOTONIC)
    if op.kind == "delete":
        return merge_delete(state, op.hlc, op.device)
    return merge_increment(state, op.body, op.hlc, op.device)


def deliver(ops: list[Op]) -> RecordState:
    state = RecordState("prescriptions", "r-1")
    for op in ops:
        state = apply(state, op).state
    return state


def snapshot(state: RecordState) -> dict[str, Any]:
    """What every replica must agree on (versions are per-replica bookkeeping)."""
    return {
        "fields": state.fields,
        "clocks": state.clocks,
        "deleted_clock": state.deleted_clock,
        "deleted": state.is_deleted(COUNTERS),
    }


def model(ops: list[Op]) -> dict[str, Any]:
    """The converged record, computed from the set of changes without merge.py."""
    fields: dict[str, Any] = {}
    clocks: dict[str, str] = {}
    upserts = [op for op in ops if op.kind == "upsert"]
    for name in LWW_FIELDS:
        writes = [(op.hlc, op.body[name]) for op in upserts if name in op.body]
        if writes:
            clocks[name], fields[name] = max(writes, key=lambda w: w[0])
    flags = [(op.hlc, op.body["read"]) for op in upserts if "read" in op.body]
    if flags:
        clocks["read"] = max(h for h, _ in flags)
        fields["read"] = any(v for _, v in flags)
    increments = [op for op in ops if op.kind == "increment" and op.body["quantity"] != 0]
    if increments:
        fields["quantity"] = sum(op.body["quantity"] for op in increments)
        clocks["quantity"] = max(op.hlc for op in increments)
    deletes = [op.hlc for op in ops if op.kind == "delete"]
    deleted_clock = max(deletes) if deletes else None
    deleted = deleted_clock is not None and all(
        c < deleted_clock for name, c in clocks.items() if name not in COUNTERS
    )
    return {"fields": fields, "clocks": clocks, "deleted_clock": deleted_clock, "deleted": deleted}


values = st.none() | st.integers(-3, 3) | st.text(alphabet="xyz", max_size=2)
upsert_bodies = st.fixed_dictionaries(
    {}, optional={"dose": values, "frequency": values, "notes": values, "read": st.booleans()}
)
bodies: st.SearchStrategy[tuple[str, dict[str, Any]]] = st.one_of(
    st.tuples(st.just("upsert"), upsert_bodies),
    st.tuples(st.just("delete"), st.just({})),
    st.tuples(st.just("increment"), st.fixed_dictionaries({"quantity": st.integers(-50, 50)})),
)


@st.composite
def change_sets(draw: st.DrawFn, kinds: st.SearchStrategy[Any] = bodies) -> list[Op]:
    """Changes from several nodes, each with its own clock; walls collide on purpose so the
    counter and node tie-breaks are exercised."""
    drawn = draw(st.lists(kinds, max_size=14))
    stamps = draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from(NODES)),
            min_size=len(drawn),
            max_size=len(drawn),
            unique=True,
        )
    )
    return [
        Op(kind, body, str(HLC(T0 + wall, counter, node)), node)
        for (kind, body), (wall, counter, node) in zip(drawn, stamps, strict=True)
    ]


def with_redeliveries(data: st.DataObject, ops: list[Op]) -> list[Op]:
    """``ops`` plus re-sent upserts/deletes (increments are deduplicated by op id upstream),
    in an arbitrary order."""
    resendable = [op for op in ops if op.kind != "increment"]
    resent = data.draw(st.lists(st.sampled_from(resendable), max_size=8)) if resendable else []
    return data.draw(st.permutations(ops + resent))


# --- convergence ---------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_any_order_and_duplication_converges_to_the_same_record(data: st.DataObject) -> None:
    ops = data.draw(change_sets())
    replica_a = deliver(with_redeliveries(data, ops))
    replica_b = deliver(with_redeliveries(data, ops))
    assert snapshot(replica_a) == model(ops)
    assert snapshot(replica_b) == snapshot(replica_a)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_redelivering_an_upsert_or_delete_changes_nothing(data: st.DataObject) -> None:
    ops = data.draw(change_sets())
    state = deliver(data.draw(st.permutations(ops)))
    before = state.copy()
    for op in ops:
        if op.kind == "increment":
            continue
        again = apply(state, op)
        assert not again.changed
        assert snapshot(again.state) == snapshot(before)
        assert again.state.version == before.version


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_increments_commute_and_ignore_tombstones(data: st.DataObject) -> None:
    kinds: st.SearchStrategy[tuple[str, dict[str, Any]]] = st.one_of(
        st.tuples(st.just("delete"), st.just({})),
        st.tuples(st.just("increment"), st.fixed_dictionaries({"quantity": st.integers(-9, 9)})),
    )
    ops = data.draw(change_sets(kinds))
    state = deliver(data.draw(st.permutations(ops)))
    deltas = [op.body["quantity"] for op in ops if op.kind == "increment"]
    assert state.fields.get("quantity", 0) == sum(deltas)
    assert snapshot(state) == model(ops)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_merge_never_modifies_the_state_it_is_given(data: st.DataObject) -> None:
    ops = data.draw(change_sets())
    state = deliver(ops)
    before = state.copy()
    for op in data.draw(st.permutations(ops)):
        apply(state, op)
    assert state == before


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_a_losing_write_is_reported_superseded_never_silently_dropped(
    data: st.DataObject,
) -> None:
    upserts_only = st.tuples(st.just("upsert"), upsert_bodies)
    ops = data.draw(change_sets(upserts_only))
    state = RecordState("prescriptions", "r-1")
    for op in data.draw(st.permutations(ops)):
        outcome = apply(state, op)
        for name, value in op.body.items():
            standing = state.clocks.get(name)
            if name in MONOTONIC:
                lost = value is False and bool(outcome.state.fields[name])
            else:
                lost = standing is not None and standing > op.hlc
            assert (name in outcome.superseded) == lost, name
            if not lost:
                assert outcome.state.fields[name] == value or name in MONOTONIC
        state = outcome.state


# --- the rules, one at a time --------------------------------------------------------------


def stamp(wall: int, node: str = "d-a", counter: int = 0) -> str:
    return str(HLC(T0 + wall, counter, node))


def test_the_higher_clock_wins_a_field_whatever_the_arrival_order() -> None:
    early = Op("upsert", {"dose": "5 mg"}, stamp(1, "d-a"), "d-a")
    late = Op("upsert", {"dose": "10 mg"}, stamp(2, "d-b"), "d-b")
    for order in ([early, late], [late, early]):
        state = deliver(order)
        assert state.fields == {"dose": "10 mg"}
        assert state.clocks == {"dose": late.hlc}
    outcome = apply(deliver([late]), early)
    assert outcome.superseded == ["dose"]
    assert not outcome.changed


def test_the_node_id_breaks_a_tie_of_wall_and_counter() -> None:
    a = Op("upsert", {"dose": "a"}, stamp(1, "d-a"), "d-a")
    b = Op("upsert", {"dose": "b"}, stamp(1, "d-b"), "d-b")
    assert deliver([a, b]).fields == deliver([b, a]).fields == {"dose": "b"}


def test_edits_of_different_fields_are_both_kept() -> None:
    a = Op("upsert", {"dose": "5 mg"}, stamp(2, "d-a"), "d-a")
    b = Op("upsert", {"frequency": "twice daily"}, stamp(1, "d-b"), "d-b")
    for order in ([a, b], [b, a]):
        assert deliver(order).fields == {"dose": "5 mg", "frequency": "twice daily"}


def test_setting_a_field_to_null_is_a_write_like_any_other() -> None:
    a = Op("upsert", {"notes": "call back"}, stamp(1), "d-a")
    b = Op("upsert", {"notes": None}, stamp(2, "d-b"), "d-b")
    for order in ([a, b], [b, a]):
        assert deliver(order).fields == {"notes": None}


def test_a_tombstone_deletes_and_a_later_upsert_resurrects_with_all_fields() -> None:
    create = Op("upsert", {"dose": "5 mg", "frequency": "daily", "notes": "x"}, stamp(1), "d-a")
    delete = Op("delete", {}, stamp(2, "d-b"), "d-b")
    deleted = deliver([create, delete])
    assert deleted.is_deleted(COUNTERS)
    assert deleted.fields["dose"] == "5 mg"  # kept for resurrection and for its scopes

    stale = apply(deleted, Op("upsert", {"notes": "older"}, stamp(1, "d-c", 5), "d-c"))
    assert stale.state.is_deleted(COUNTERS)

    revive = apply(deleted, Op("upsert", {"notes": "seen again"}, stamp(3), "d-a"))
    assert not revive.state.is_deleted(COUNTERS)
    assert revive.state.fields == {"dose": "5 mg", "frequency": "daily", "notes": "seen again"}


def test_a_delete_older_than_a_field_write_leaves_the_record_alive() -> None:
    create = Op("upsert", {"dose": "5 mg"}, stamp(1), "d-a")
    edit = Op("upsert", {"frequency": "daily"}, stamp(5, "d-b"), "d-b")
    delete = Op("delete", {}, stamp(3, "d-c"), "d-c")
    for order in ([create, edit, delete], [delete, create, edit], [create, delete, edit]):
        assert not deliver(order).is_deleted(COUNTERS)


def test_the_latest_of_several_deletes_holds_the_tombstone() -> None:
    create = Op("upsert", {"dose": "5 mg"}, stamp(1), "d-a")
    first = Op("delete", {}, stamp(2), "d-a")
    second = Op("delete", {}, stamp(4, "d-b"), "d-b")
    state = deliver([create, second])
    outcome = apply(state, first)
    assert outcome.superseded == ["_deleted"]
    assert outcome.state.deleted_clock == second.hlc
    # an upsert between the two deletes does not bring the record back
    between = Op("upsert", {"dose": "7 mg"}, stamp(3, "d-c"), "d-c")
    assert deliver([create, first, second, between]).is_deleted(COUNTERS)
    assert deliver([between, second, first, create]).is_deleted(COUNTERS)


def test_counters_neither_reset_on_delete_nor_resurrect_on_increment() -> None:
    create = Op("upsert", {"dose": "x"}, stamp(1), "d-a")
    stock = Op("increment", {"quantity": 100}, stamp(2), "d-a")
    delete = Op("delete", {}, stamp(3, "d-b"), "d-b")
    dispense = Op("increment", {"quantity": -5}, stamp(4, "d-c"), "d-c")
    for order in ([create, stock, delete, dispense], [dispense, delete, stock, create]):
        state = deliver(order)
        assert state.fields["quantity"] == 95
        assert state.is_deleted(COUNTERS)


def test_two_offline_dispenses_add_up() -> None:
    stock = Op("increment", {"quantity": 100}, stamp(1), "d-a")
    counter_1 = Op("increment", {"quantity": -5}, stamp(2, "d-b"), "d-b")
    counter_2 = Op("increment", {"quantity": -5}, stamp(2, "d-c"), "d-c")
    assert deliver([stock, counter_1, counter_2]).fields["quantity"] == 90
    assert deliver([counter_2, stock, counter_1]).fields["quantity"] == 90


def test_a_zero_delta_changes_nothing() -> None:
    outcome = apply(deliver([]), Op("increment", {"quantity": 0}, stamp(1), "d-a"))
    assert not outcome.changed
    assert outcome.state.version == 0


def test_a_monotonic_flag_once_true_stays_true() -> None:
    read = Op("upsert", {"read": True}, stamp(1), "d-a")
    unread_later = Op("upsert", {"read": False}, stamp(9, "d-b"), "d-b")
    for order in ([read, unread_later], [unread_later, read]):
        state = deliver(order)
        assert state.fields["read"] is True
        assert state.clocks["read"] == unread_later.hlc
    outcome = apply(deliver([read]), unread_later)
    assert outcome.superseded == ["read"]
    assert outcome.state.fields["read"] is True


def test_a_monotonic_flag_starts_false_until_someone_sets_it() -> None:
    state = deliver([Op("upsert", {"read": False, "dose": "x"}, stamp(1), "d-a")])
    assert state.fields["read"] is False
    state = apply(state, Op("upsert", {"read": True}, stamp(0, "d-b"), "d-b")).state
    assert state.fields["read"] is True  # a lower clock still sets the flag


def test_merge_records_the_version_and_device_of_each_changed_field() -> None:
    state = deliver([Op("upsert", {"dose": "5 mg", "frequency": "daily"}, stamp(1), "d-a")])
    assert state.version == 1
    state = apply(state, Op("upsert", {"dose": "10 mg"}, stamp(2, "d-b"), "d-b")).state
    assert state.version == 2
    assert state.field_versions == {"dose": 2, "frequency": 1}
    assert state.field_devices == {"dose": "d-b", "frequency": "d-a"}
    # a write that changes nothing does not bump the version
    same = apply(state, Op("upsert", {"dose": "old"}, stamp(0, "d-c"), "d-c"))
    assert same.state.version == 2
    assert same.state.field_devices["dose"] == "d-b"
