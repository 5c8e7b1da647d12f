"""Rows to RecordState, and the JSON the store writes into its columns (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

from waystation.core.record import RecordState


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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
