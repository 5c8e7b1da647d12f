"""Rows to RecordState and back (JSON columns written with orjson)."""

from __future__ import annotations

from typing import Any

import orjson

from waystation.core.record import RecordState


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | None) -> Any:
    return orjson.loads(text) if text else None


def state_from_row(row: Any) -> RecordState:
    meta = orjson.loads(row.field_meta)
    return RecordState(
        collection=row.collection,
        id=row.id,
        fields=orjson.loads(row.fields),
        clocks=orjson.loads(row.clocks),
        deleted_clock=row.deleted_clock,
        version=row.version,
        field_versions=meta["v"],
        field_devices=meta["d"],
        conflict=bool(row.conflict),
    )


def state_to_params(
    state: RecordState, *, seq: int, deleted: bool, updated_at: int
) -> dict[str, Any]:
    return {
        "collection": state.collection,
        "id": state.id,
        "seq": seq,
        "version": state.version,
        "deleted": deleted,
        "conflict": state.conflict,
        "fields": dumps(state.fields),
        "clocks": dumps(state.clocks),
        "deleted_clock": state.deleted_clock,
        "field_meta": dumps({"v": state.field_versions, "d": state.field_devices}),
        "updated_at": updated_at,
    }
