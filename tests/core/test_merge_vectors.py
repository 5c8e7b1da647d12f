"""The shared merge vectors (tests/vectors/merge/*.json, format in its README.md), run
against core.merge ("merge" layer) and core.apply.decide ("policy" layer). The JS client
runs the "merge" files against its own merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from waystation.core.access import Principal
from waystation.core.apply import ApplyContext, decide
from waystation.core.hlc import Clock
from waystation.core.merge import MergeOutcome, merge_delete, merge_increment, merge_upsert
from waystation.core.protocol import Change
from waystation.core.record import RecordState
from waystation.core.schema import CollectionSpec, parse_schema

VECTORS = Path(__file__).parent.parent / "vectors" / "merge"


def _load() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        found.extend((path.stem, doc, case) for case in doc["cases"])
    return found


CASES = _load()


def _state(collection: str, raw: dict[str, Any] | None) -> RecordState:
    if raw is None:
        return RecordState(collection, "r-1")
    return RecordState(
        collection,
        "r-1",
        fields=dict(raw["fields"]),
        clocks=dict(raw["clocks"]),
        deleted_clock=raw["deleted_clock"],
        version=raw.get("version", 1),
        field_versions=dict(raw.get("field_versions", {})),
        field_devices=dict(raw.get("field_devices", {})),
    )


def _merge(spec: CollectionSpec, state: RecordState, change: dict[str, Any]) -> MergeOutcome:
    fields, hlc, device = change["fields"], change["hlc"], change["device"]
    if change["op"] == "upsert":
        return merge_upsert(
            state, fields, hlc, device, monotonic=spec.monotonic, counters=spec.counters
        )
    if change["op"] == "delete":
        return merge_delete(state, hlc, device, counters=spec.counters)
    return merge_increment(state, fields, hlc, device)


def _seen(
    spec: CollectionSpec, state: RecordState, changed: bool, superseded: list[str]
) -> dict[str, Any]:
    return {
        "fields": state.fields,
        "clocks": state.clocks,
        "deleted_clock": state.deleted_clock,
        "deleted": state.is_deleted(spec.counters),
        "changed": changed,
        "superseded": superseded,
    }


def test_every_vector_file_is_well_formed() -> None:
    files = sorted(VECTORS.glob("*.json"))
    assert {p.stem for p in files} >= {"lww", "deletes", "counters", "monotonic", "policies"}
    for path in files:
        doc = json.loads(path.read_text())
        assert doc["layer"] in ("merge", "policy"), path.name
        parse_schema(doc["schema"])
        assert len({c["name"] for c in doc["cases"]}) == len(doc["cases"]), path.name


@pytest.mark.parametrize(
    ("doc", "case"), [(d, c) for _, d, c in CASES], ids=[f"{f}: {c['name']}" for f, _, c in CASES]
)
def test_vector(doc: dict[str, Any], case: dict[str, Any]) -> None:
    schema = parse_schema(doc["schema"])
    spec = schema.collections[case["collection"]]
    state = _state(spec.name, case["state"])
    before = state.copy()
    change = case["change"]
    expected = case["expected"]
    if doc["layer"] == "merge":
        outcome = _merge(spec, state, change)
        assert _seen(spec, outcome.state, outcome.changed, outcome.superseded) == expected
        assert state == before  # merge never modifies what it is given
        return
    server = doc["server"]
    clock = Clock(server["node"], now_ms=lambda: int(server["now_ms"]))
    who = Principal("u-admin", "admin", "admin", frozenset(), change["device"])
    op = Change(
        op_id="op-1",
        collection=spec.name,
        record_id="r-1",
        op=change["op"],
        fields=change["fields"],
        hlc=change["hlc"],
        base_version=change.get("base_version", 0),
    )
    verdict = decide(
        ApplyContext(schema, who, clock, server["max_clock_skew_ms"]),
        op,
        state if case["state"] is not None else None,
    )
    assert verdict.state is not None, verdict.error
    seen = _seen(spec, verdict.state, verdict.changed, verdict.superseded)
    seen["status"] = verdict.status
    if verdict.status == "conflict":
        assert verdict.conflict is not None
        seen["conflict"] = verdict.conflict.code
    else:
        seen["hlc"] = verdict.hlc
        seen["restamped"] = verdict.restamped
    assert seen == expected
