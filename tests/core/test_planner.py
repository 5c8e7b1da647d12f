"""A batch's plan, on plain data (core/planner.py, core/plan.py): what each op is answered
and what the batch writes, decided before anything is written."""

from __future__ import annotations

from typing import Any

from waystation.core.access import Principal
from waystation.core.apply import ApplyContext, decide
from waystation.core.errors import ValidationError
from waystation.core.hlc import Clock
from waystation.core.plan import BatchPlan
from waystation.core.planner import Earlier, PlanBuilder
from waystation.core.protocol import Change
from waystation.core.record import RecordState
from waystation.core.schema import health_schema

T0 = 1_764_496_800_000
NURSE = Principal("u-hw", "hana", "health_worker", frozenset({"facility:f-1"}), "d-hw")
LOG = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30", "severity": 3}


def _op(
    op_id: str, record_id: str, fields: dict[str, Any], *, wall: int, base_version: int = 0
) -> Change:
    return Change(
        op_id=op_id,
        collection="symptom_logs",
        record_id=record_id,
        op="upsert",
        fields=fields,
        hlc=f"{T0 + wall:015d}-00000-d-hw",
        base_version=base_version,
    )


def _plan(
    ops: list[Change],
    stored: dict[str, RecordState] | None = None,
    seqs: dict[str, int] | None = None,
) -> BatchPlan:
    """Decide ``ops`` in order as store/push.py does (the re-sends included)."""
    ctx = ApplyContext(health_schema(), NURSE, Clock("s-test", now_ms=lambda: T0))
    states = {("symptom_logs", k): v for k, v in (stored or {}).items()}
    builder = PlanBuilder(
        ctx, T0, states, {("symptom_logs", k): v for k, v in (seqs or {}).items()}
    )
    for op in ops:
        earlier = builder.seen(op.op_id)
        if earlier is not None:
            builder.repeat(op, earlier)
            continue
        state = builder.state_of((op.collection, op.record_id))
        builder.record(op, state, decide(ctx, op, state))
    return builder.finish()


def test_a_record_written_twice_in_a_batch_is_written_once_with_its_newest_state() -> None:
    plan = _plan(
        [_op("o-1", "r-1", LOG, wall=1), _op("o-2", "r-1", {"severity": 5}, wall=2, base_version=1)]
    )
    [record] = plan.records
    assert record.state.fields["severity"] == 5 and record.state.version == 2
    assert not record.stored and not record.replace_scopes  # new: inserted, no old scopes
    assert record.scopes == {"patient:p-1", "facility:f-1"}
    assert record.unique_keys and record.old_keys == {}
    assert [a.seq_of for a in plan.answers] == [("symptom_logs", "r-1")] * 2
    assert [a.result["version"] for a in plan.answers] == [1, 2]
    assert [(e.answer, e.duplicate) for e in plan.op_log] == [(0, False), (1, False)]


def test_a_resend_in_the_same_batch_repeats_its_first_answer() -> None:
    first = _op("o-1", "r-1", LOG, wall=1)
    plan = _plan([first, first])
    assert plan.answers[1].result == {
        "op_id": "o-1",
        "status": "duplicate",
        "version": 1,
        "hlc": first.hlc,
    }
    assert plan.answers[1].repeats == 0  # it will report the seq the first answer gets
    assert [(e.answer, e.duplicate) for e in plan.op_log] == [(0, False), (1, True)]
    assert len(plan.records) == 1


def test_an_op_that_changes_nothing_reports_its_record_s_stored_seq() -> None:
    op = _op("o-1", "r-1", LOG, wall=1)
    before = _plan([op]).records[0].state
    plan = _plan(
        [_op("o-2", "r-1", {"severity": 3}, wall=0, base_version=1)],
        stored={"r-1": before},
        seqs={"r-1": 41},
    )
    assert plan.records == ()
    assert (plan.answers[0].seq_of, plan.answers[0].stored_seq) == (("symptom_logs", "r-1"), 41)


def test_rejected_and_unparsed_ops_write_nothing_but_their_answer() -> None:
    ctx = ApplyContext(health_schema(), NURSE, Clock("s-test", now_ms=lambda: T0))
    builder = PlanBuilder(ctx, T0, {}, {})
    builder.reject("o-bad", ValidationError("hlc: missing", {"field": "hlc"}))
    outside = _op("o-2", "r-2", {**LOG, "facility_id": "f-9"}, wall=1)
    builder.record(outside, None, decide(ctx, outside, None))
    plan = builder.finish()
    assert [a.result["status"] for a in plan.answers] == ["rejected", "rejected"]
    assert plan.records == () and plan.conflicts == ()
    assert [e.op.op_id for e in plan.op_log] == ["o-2"]  # an op that parsed is logged


def test_another_user_s_op_id_is_refused() -> None:
    ctx = ApplyContext(health_schema(), NURSE, Clock("s-test", now_ms=lambda: T0))
    builder = PlanBuilder(ctx, T0, {}, {})
    builder.repeat(
        _op("o-1", "r-1", LOG, wall=1),
        Earlier("u-someone-else", {"op_id": "o-1", "status": "applied"}),
    )
    [answer] = builder.finish().answers
    assert answer.result["status"] == "rejected" and answer.repeats is None
