"""Field values as the replica stores and sends them: plain JSON, checked before queuing.

The client never refuses a write for schema reasons (the server decides), but a value that
cannot travel as JSON at all is a broken call and fails at once with ``TypeError`` or
``ValueError`` naming the field. ``date`` and aware ``datetime`` values are accepted for
convenience and become their ISO 8601 strings (UTC, ``Z``), the form the server checks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import orjson


def normalise_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy of ``fields``; raises TypeError/ValueError naming the bad path."""
    if not isinstance(fields, Mapping):
        raise TypeError(f"fields must be a mapping of field name to value, got {type(fields)}")
    return {_key(k, "fields"): _value(v, f"fields.{k}") for k, v in fields.items()}


def _key(key: Any, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"{path}: field names must be non-empty strings, got {key!r}")
    return key


def _value(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value} is not a JSON number")
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{path}: datetime without a time zone; use an aware datetime")
        utc = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return utc
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {_key(k, path): _value(v, f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)
