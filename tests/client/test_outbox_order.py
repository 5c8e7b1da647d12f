"""Push order: higher collection priority first, then age; a record's ops never overtake
each other, even when one of them is failing."""

from __future__ import annotations

from waystation.client import Replica, RetryPolicy
from waystation.client import outbox as ob
from waystation.client.db import set_meta

LOG = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30"}


def _next(rep: Replica, limit: int = 100, *, due_before_ms: int | None = None) -> list[str]:
    with rep.db.read() as conn:
        batch = ob.next_batch(conn, limit, due_before_ms=due_before_ms)
    return [f"{e.collection}:{e.op}" for e in batch]


def _priorities(rep: Replica, **priorities: int) -> None:
    with rep.db.transaction() as conn:
        set_meta(conn, "collections", {k: {"priority": v} for k, v in priorities.items()})
        ob.set_priorities(conn, priorities)


def test_higher_priority_collections_go_first_then_oldest(replica: Replica) -> None:
    _priorities(replica, encounters=1, prescriptions=1)
    replica.put("symptom_logs", LOG)
    replica.put("encounters", {"patient_id": "p-1", "facility_id": "f-1"})
    replica.put("symptom_logs", {**LOG, "date": "2025-12-01"})
    replica.put("prescriptions", {"patient_id": "p-1", "dose": "5 mg"})
    assert _next(replica) == [
        "encounters:upsert",
        "prescriptions:upsert",
        "symptom_logs:upsert",
        "symptom_logs:upsert",
    ]
    assert _next(replica, 1) == ["encounters:upsert"]


def test_priorities_learned_later_apply_to_ops_already_queued(replica: Replica) -> None:
    replica.put("symptom_logs", LOG)
    replica.put("encounters", {"patient_id": "p-1", "facility_id": "f-1"})
    assert _next(replica) == ["symptom_logs:upsert", "encounters:upsert"]
    _priorities(replica, encounters=1)
    assert _next(replica) == ["encounters:upsert", "symptom_logs:upsert"]


def test_a_record_waits_behind_its_own_failed_op_while_others_proceed(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    replica.put("symptom_logs", {"severity": 2}, id=rid)
    other = replica.put("symptom_logs", {**LOG, "date": "2025-12-01"})
    first = replica.outbox()[0]
    with replica.db.transaction() as conn:
        error = {"code": "SERVER_UNAVAILABLE", "message": "boom", "details": {}}
        ob.record_failure(conn, [first], error, max_retries=1, delay_s=lambda n: 0)
    assert replica.outbox(status="FAILED")[0].op_id == first.op_id
    with replica.db.read() as conn:
        assert [e.record_id for e in ob.next_batch(conn, 10)] == [other]
    assert replica.retry_failed() == 1
    assert len(_next(replica)) == 3


def test_continuous_mode_leaves_ops_in_backoff_and_their_followers(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    replica.put("symptom_logs", {"severity": 2}, id=rid)
    replica.put("symptom_logs", {**LOG, "date": "2025-12-01"})
    first = replica.outbox()[0]
    with replica.db.transaction() as conn:
        error = {"code": "SERVER_UNAVAILABLE", "message": "boom", "details": {}}
        ob.record_failure(conn, [first], error, max_retries=5, delay_s=lambda n: 60)
    [entry] = replica.outbox(record_id=rid, limit=1)
    assert entry.status.value == "PENDING" and entry.retry_count == 1
    assert entry.next_attempt_at is not None
    assert entry.last_error == error
    now = ob.now_ms()
    assert len(_next(replica, due_before_ms=now)) == 1  # only the other record
    assert len(_next(replica)) == 3  # an explicit sync tries everything now


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, initial_s=1, max_wait_s=30, jitter_s=0.5)
    delays = [policy.delay(n) for n in range(1, 9)]
    assert 1 <= delays[0] <= 1.5
    assert 4 <= delays[2] <= 4.5
    assert delays[-1] >= 30
    assert all(d <= 30.5 for d in delays)
