"""Concurrent pushes lose nothing, on both engines.

SQLite has one writer, so these pass there by construction. PostgreSQL runs writers at once:
where the race window is narrow, ``race()`` holds every pusher at a chosen statement until
all of them have got there, so each one decides on the same snapshot and the race is lost
by one of them every time, not by luck.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from waystation.core.access import Principal
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.protocol import OpResult
from waystation.store import SqlStore

ALLOCATION = "UPDATE counters"  # the first statement of a push's write phase
RECORDS_LOAD = "FOR UPDATE"  # the read of the records a push touches (PostgreSQL)


def device(n: int) -> tuple[Principal, Clock]:
    principal = Principal(
        f"u-{n}", f"nurse{n}", "health_worker", frozenset({"facility:f-1"}), f"d-{n}"
    )
    return principal, Clock(f"d-{n}")


def change(
    clock: Clock,
    collection: str,
    record_id: str,
    fields: dict[str, Any],
    op: str = "upsert",
    base_version: int = 0,
) -> dict[str, Any]:
    return {
        "op_id": uuid7(),
        "collection": collection,
        "record_id": record_id,
        "op": op,
        "fields": fields,
        "hlc": str(clock.send()),
        "base_version": base_version,
    }


@contextmanager
def race(store: SqlStore, at: str, parties: int) -> Iterator[None]:
    """PostgreSQL: the first time each thread is about to run a statement containing ``at``,
    it waits until ``parties`` threads are there (later attempts run freely)."""
    if store.db.is_sqlite:
        yield
        return
    barrier = threading.Barrier(parties, timeout=20)
    waited: set[int] = set()

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        me = threading.get_ident()
        if at in statement and me not in waited:
            waited.add(me)
            barrier.wait()

    event.listen(store.db.engine, "before_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(store.db.engine, "before_cursor_execute", hold)


def at_once(*pushes: Callable[[], list[OpResult]]) -> list[list[OpResult]]:
    with ThreadPoolExecutor(len(pushes)) as pool:
        futures = [pool.submit(push) for push in pushes]
        return [f.result(timeout=60) for f in futures]


def lost_races(store: SqlStore) -> int:
    return sum(store.db.lost_races.values())


def test_two_creations_of_one_new_record_at_once_keep_both_edits(store: SqlStore) -> None:
    (a, clock_a), (b, clock_b) = device(1), device(2)
    rid = uuid7()
    first = change(clock_a, "patients", rid, {"name": "A", "facility_id": "f-1", "phone": "1"})
    second = change(
        clock_b, "patients", rid, {"name": "B", "facility_id": "f-1", "village": "Ahero"}
    )
    with race(store, ALLOCATION, 2):
        results = at_once(lambda: store.push(a, [first]), lambda: store.push(b, [second]))
    assert [r[0]["status"] for r in results] == ["applied", "applied"]
    assert sorted(r[0]["version"] for r in results) == [1, 2]
    record = store.get_record("patients", rid)
    assert record is not None
    # neither creation overwrote the other: the loser merged into the winner's record
    assert record.state.fields == {
        "name": "B",
        "facility_id": "f-1",
        "phone": "1",
        "village": "Ahero",
    }
    assert record.state.version == 2
    assert lost_races(store) == (0 if store.db.is_sqlite else 1)


def test_a_batch_resent_while_its_first_attempt_runs_counts_once(store: SqlStore) -> None:
    nurse, clock = device(1)
    item = uuid7()
    batch = [
        change(clock, "pharmacy_inventory", item, {"facility_id": "f-1", "medicine_id": "m-amox"}),
        change(clock, "pharmacy_inventory", item, {"quantity": 100}, op="increment"),
    ]
    with race(store, ALLOCATION, 2):
        results = at_once(lambda: store.push(nurse, batch), lambda: store.push(nurse, batch))
    statuses = sorted(tuple(r["status"] for r in result) for result in results)
    assert statuses == [("applied", "applied"), ("duplicate", "duplicate")]
    record = store.get_record("pharmacy_inventory", item)
    assert record is not None
    assert record.state.fields["quantity"] == 100
    assert lost_races(store) == (0 if store.db.is_sqlite else 1)


def test_an_increment_resent_while_its_first_attempt_runs_counts_once(store: SqlStore) -> None:
    nurse, clock = device(1)
    item = uuid7()
    store.push(
        nurse,
        [
            change(
                clock, "pharmacy_inventory", item, {"facility_id": "f-1", "medicine_id": "m-amox"}
            )
        ],
    )
    take = change(clock, "pharmacy_inventory", item, {"quantity": -5}, op="increment")
    # both look the op id up before either commits; the record lock then orders them
    with race(store, RECORDS_LOAD, 2):
        results = at_once(lambda: store.push(nurse, [take]), lambda: store.push(nurse, [take]))
    assert sorted(r[0]["status"] for r in results) == ["applied", "duplicate"]
    record = store.get_record("pharmacy_inventory", item)
    assert record is not None
    assert record.state.fields["quantity"] == -5
    assert lost_races(store) == (0 if store.db.is_sqlite else 1)


def test_two_devices_claiming_one_unique_key_at_once(store: SqlStore) -> None:
    (a, clock_a), (b, clock_b) = device(1), device(2)
    day = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30"}
    log_a, log_b = uuid7(), uuid7()
    with race(store, ALLOCATION, 2):
        results = at_once(
            lambda: store.push(a, [change(clock_a, "symptom_logs", log_a, {**day, "severity": 2})]),
            lambda: store.push(b, [change(clock_b, "symptom_logs", log_b, {**day, "severity": 7})]),
        )
    (ra,), (rb,) = results
    assert sorted([ra["status"], rb["status"]]) == ["applied", "conflict"]
    winner, loser = (log_a, rb) if ra["status"] == "applied" else (log_b, ra)
    assert loser["error"]["code"] == "UNIQUE_VIOLATION"
    assert loser["error"]["details"]["existing_id"] == winner
    assert lost_races(store) == (0 if store.db.is_sqlite else 1)


def test_many_writers_on_the_same_records_lose_no_update_and_never_deadlock(
    store: SqlStore,
) -> None:
    admin, clock = device(0)
    items = [uuid7() for _ in range(3)]
    patients = [uuid7() for _ in range(3)]
    store.push(
        admin,
        [
            change(clock, "pharmacy_inventory", i, {"facility_id": "f-1", "medicine_id": "m"})
            for i in items
        ],
    )
    writers, rounds = 8, 10
    written: list[tuple[str, str, str]] = []  # (record, hlc, value) of every phone write

    def work(n: int) -> None:
        principal, own_clock = device(n + 1)
        for k in range(rounds):
            batch = [
                change(own_clock, "pharmacy_inventory", i, {"quantity": -1}, op="increment")
                for i in items
            ]
            for pid in patients:
                op = change(
                    own_clock,
                    "patients",
                    pid,
                    {"name": "x", "facility_id": "f-1", "phone": f"{n}-{k}"},
                )
                written.append((pid, op["hlc"], f"{n}-{k}"))
                batch.append(op)
            if n % 2:  # half the writers touch the records in the opposite order
                batch.reverse()
            results = store.push(principal, batch)
            assert {r["status"] for r in results} == {"applied"}, results

    with ThreadPoolExecutor(writers) as pool:
        for future in [pool.submit(work, n) for n in range(writers)]:
            future.result(timeout=120)
    for item in items:  # every increment counted once
        record = store.get_record("pharmacy_inventory", item)
        assert record is not None
        assert record.state.fields["quantity"] == -writers * rounds
    for pid in patients:  # the highest clock won, whatever the commit order
        record = store.get_record("patients", pid)
        assert record is not None
        newest = max((hlc, value) for rid, hlc, value in written if rid == pid)
        assert (record.state.clocks["phone"], record.state.fields["phone"]) == newest
    # the records are locked in one order whatever the batch order: no deadlock to retry
    assert store.db.lost_races["40P01"] == 0


def test_seqs_are_unique_and_dense_under_concurrent_writers(store: SqlStore) -> None:
    writers = 8

    def work(k: int) -> list[int]:
        principal, clock = device(k)
        seqs: list[int] = []
        for _ in range(10):
            results = store.push(
                principal,
                [
                    change(clock, "patients", uuid7(), {"name": "p", "facility_id": "f-1"})
                    for _ in range(1 + k % 3)
                ],
            )
            seqs += [int(r["seq"]) for r in results]
        return seqs

    with ThreadPoolExecutor(writers) as pool:
        allocated = sorted(
            s for f in [pool.submit(work, k) for k in range(writers)] for s in f.result(timeout=120)
        )
    assert allocated == list(range(1, len(allocated) + 1))
    assert store.current_cursor().seq == len(allocated)
