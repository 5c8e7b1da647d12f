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

import orjson

from waystation.core.errors import ValidationError
from waystation.core.schema import MAX_SAFE_INTEGER, CollectionSpec, FieldSpec, FieldType

# How deep a pushed op's fields may nest. The schema's own shapes are at most 3 deep (an
# object's members, an array's items); anything deeper is refused before any recursive
# code (validation, JSON encoding) walks it.
MAX_FIELDS_DEPTH = 8

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
            # PostgreSQL text cannot hold NUL, and a scope or unique key is text
            return None if "\x00" not in value else "NUL characters (U+0000) are not allowed"
        return f"expected a string, got {type(value).__name__}"
    if kind in ("integer", "counter"):
        if isinstance(value, int) and not isinstance(value, bool):
            return _out_of_range(value)
        return f"expected an integer, got {type(value).__name__}"
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        return _out_of_range(value) if isinstance(value, int) else None
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


def _out_of_range(value: int) -> str | None:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return None
    return f"{value} is outside the integer range +/-{MAX_SAFE_INTEGER} (2^53 - 1)"


def check_fields_shape(fields: Mapping[str, Any], path: str = "fields") -> None:
    """Raise ValidationError for fields nested deeper than ``MAX_FIELDS_DEPTH`` or holding
    an integer outside the safe range, wherever it is. Iterative: a pushed op may nest a
    thousand levels, and nothing recursive may touch it before this."""
    stack: list[tuple[Any, str, int]] = [(fields, path, 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = ((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            children = ((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            if isinstance(value, int) and not isinstance(value, bool):
                problem = _out_of_range(value)
                if problem is not None:
                    raise _fail(where, problem)
            continue
        if depth > MAX_FIELDS_DEPTH:
            raise _fail(where, f"nested deeper than {MAX_FIELDS_DEPTH} levels")
        stack.extend((child, child_path, depth + 1) for child_path, child in children)


def check_value(spec: FieldSpec, value: Any, path: str) -> None:
    """Raise ValidationError unless ``value`` fits ``spec``; ``None`` clears a field."""
    if value is None:
        return
    kind = spec.type
    if kind == "array":
        if not isinstance(value, list):
            raise _fail(path, f"expected a list, got {type(value).__name__}")
        if len(value) > spec.items_limit:  # before walking a million items
            raise _fail(path, f"at most {spec.items_limit} items")
        if spec.items is not None:
            longest = spec.item_length_limit
            for i, item in enumerate(value):
                problem = _scalar_problem(spec.items, item)
                if problem is None and isinstance(item, str) and len(item) > longest:
                    problem = f"at most {longest} characters"
                if problem is not None:
                    raise _fail(f"{path}[{i}]", problem)
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
    if isinstance(value, str) and len(value) > spec.length_limit:
        raise _fail(path, f"at most {spec.length_limit} characters")
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
            raise _fail(
                f"fields.{name}", f"unknown field of {spec.name}; declared: {sorted(spec.fields)}"
            )
        if field.type == "counter":
            raise _fail(
                f"fields.{name}", "is a counter: change it with an 'increment' op, not 'upsert'"
            )
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


def validate_increment(
    spec: CollectionSpec, fields: Mapping[str, Any], current: Mapping[str, Any]
) -> None:
    """An increment names counter fields only, each with an integer delta within the
    counter's ``max_delta``, and leaves the total (``current`` + delta) within the safe
    integer range. The total depends on what arrived before: the server, the authority,
    decides it once, as it applies the op."""
    if not fields:
        raise _fail("fields", "an increment needs at least one counter and its delta")
    for name, delta in fields.items():
        field = spec.fields.get(name)
        path = f"fields.{name}"
        if field is None or field.type != "counter":
            raise _fail(path, f"not a counter of {spec.name}; counters: {sorted(spec.counters)}")
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise _fail(path, "the delta must be an integer")
        if abs(delta) > field.delta_limit:
            raise _fail(
                path,
                f"a delta of {delta} is beyond this counter's limit of "
                f"+/-{field.delta_limit} per increment",
            )
        total = current.get(name) or 0
        if abs(total + delta) > MAX_SAFE_INTEGER:
            raise _fail(
                path,
                f"would take the counter from {total} past the integer range +/-{MAX_SAFE_INTEGER}",
            )


def check_stored_numbers(spec: CollectionSpec, fields: Mapping[str, Any]) -> None:
    """Refuse to build on a record that holds an integer outside the safe range (stored
    before the range was enforced): every later write of it would fail to store."""
    for name in spec.integer_fields:
        value = fields.get(name)
        if isinstance(value, int) and _out_of_range(value) is not None:
            raise _fail(
                f"fields.{name}",
                f"the record holds {value}, outside the integer "
                f"range +/-{MAX_SAFE_INTEGER} (stored before limits were enforced); "
                "an administrator must repair it before it can change",
            )


def check_record_size(spec: CollectionSpec, fields: Mapping[str, Any]) -> None:
    """The record's fields as stored, after the merge, within ``max_record_bytes``: many
    small upserts cannot grow a record past it either."""
    size = len(orjson.dumps(fields))
    if size > spec.max_record_bytes:
        raise _fail(
            "fields",
            f"the record would hold {size} bytes of fields, over the "
            f"{spec.max_record_bytes} bytes {spec.name} allows",
        )
