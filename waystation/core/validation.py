"""Check field values against their declared types, ranges and enumerations.

Run by the server on every pushed op (the client queues every write and lets the server
decide). Each failure is a ValidationError whose ``details["field"]`` names the path, e.g.
``fields.vitals.pulse``, so a person can find the entry to fix.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from waystation.core.errors import ValidationError
from waystation.core.schema import CollectionSpec, FieldSpec, FieldType

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _fail(path: str, message: str) -> ValidationError:
    return ValidationError(f"{path}: {message}", {"field": path})


def _scalar_problem(kind: FieldType, value: Any) -> str | None:
    """What is wrong with ``value`` as a ``kind``, or None. The caller names the path, so
    that a valid value (nearly all of them) costs no string building."""
    if kind == "string":
        if isinstance(value, str):
            return None
        return f"expected a string, got {type(value).__name__}"
    if kind in ("integer", "counter"):
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return f"expected an integer, got {type(value).__name__}"
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        return None
    if kind == "boolean":
        if isinstance(value, bool):
            return None
        return f"expected true or false, got {type(value).__name__}"
    if kind == "date":
        if not isinstance(value, str):
            return "expected a date as 'YYYY-MM-DD'"
        try:
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            dt.date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a date 'YYYY-MM-DD'"
        return None
    if kind == "datetime":
        if not isinstance(value, str):
            return "expected an RFC 3339 time such as '2025-11-30T10:00:00Z'"
        try:
            if not _DATETIME.fullmatch(value):
                raise ValueError(value)
            parsed = dt.datetime.fromisoformat(value.upper())
        except ValueError:
            return f"{value!r} is not an RFC 3339 time"
        if parsed.tzinfo is None:
            return f"{value!r} has no time zone: add 'Z' or an offset"
    return None


def check_value(spec: FieldSpec, value: Any, path: str) -> None:
    """Raise ValidationError unless ``value`` fits ``spec``; ``None`` clears a field."""
    if value is None:
        return
    kind = spec.type
    if kind == "array":
        if not isinstance(value, list):
            raise _fail(path, f"expected a list, got {type(value).__name__}")
        if spec.items is not None:
            for i, item in enumerate(value):
                problem = _scalar_problem(spec.items, item)
                if problem is not None:
                    raise _fail(f"{path}[{i}]", problem)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise _fail(path, f"at most {spec.max_length} items")
        return
    if kind == "object":
        if not isinstance(value, dict):
            raise _fail(path, f"expected an object, got {type(value).__name__}")
        members = spec.fields or {}
        for key, member in value.items():
            if key not in members:
                raise _fail(f"{path}.{key}", f"unknown member; expected one of {sorted(members)}")
            check_value(members[key], member, f"{path}.{key}")
        return
    problem = _scalar_problem(kind, value)
    if problem is not None:
        raise _fail(path, problem)
    if spec.enum is not None and value not in spec.enum:
        raise _fail(path, f"{value!r} is not one of {spec.enum}")
    if spec.max_length is not None and isinstance(value, str) and len(value) > spec.max_length:
        raise _fail(path, f"at most {spec.max_length} characters")
    if spec.min is None and spec.max is None:
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            raise _fail(path, f"{value} is below the minimum {spec.min:g}")
        if spec.max is not None and value > spec.max:
            raise _fail(path, f"{value} is above the maximum {spec.max:g}")


def validate_upsert(spec: CollectionSpec, fields: Mapping[str, Any], *, creating: bool) -> None:
    """Types and ranges of every given field; on create, the required and scope fields too.

    An upsert may not set a counter: counters change only through ``increment`` ops, whose
    deltas add up however they are delivered.
    """
    declared = spec.fields
    for name, value in fields.items():
        field = declared.get(name)
        if field is None:
            raise _fail(f"fields.{name}",
                        f"unknown field of {spec.name}; declared: {sorted(spec.fields)}")
        if field.type == "counter":
            raise _fail(f"fields.{name}",
                        "is a counter: change it with an 'increment' op, not 'upsert'")
        if value is None:
            if name in spec.required:
                raise _fail(f"fields.{name}", "is required and cannot be null")
            continue
        check_value(field, value, f"fields.{name}")
    if creating and not spec.required_on_create <= fields.keys():
        missing = [n for n in sorted(spec.required_on_create) if n not in fields]
        if missing:
            raise _fail(
                f"fields.{missing[0]}",
                f"required to create a record in {spec.name} (missing: {', '.join(missing)})",
            )


def validate_increment(spec: CollectionSpec, fields: Mapping[str, Any]) -> None:
    """An increment names counter fields only, each with an integer delta."""
    if not fields:
        raise _fail("fields", "an increment needs at least one counter and its delta")
    for name, delta in fields.items():
        field = spec.fields.get(name)
        path = f"fields.{name}"
        if field is None or field.type != "counter":
            raise _fail(path, f"not a counter of {spec.name}; counters: {sorted(spec.counters)}")
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise _fail(path, "the delta must be an integer")
