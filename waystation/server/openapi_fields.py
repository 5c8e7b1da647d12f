"""The deployment's collections in the OpenAPI document: the fields of each, as JSON Schema.

The schema (core/schema.py) is the server's to choose, so the document names what this
server accepts: for each collection ``Fields-<name>`` (its fields with their types, ranges,
enumerations and lengths; ``null`` clears a field) and ``Change-<name>`` (a pushed op of that
collection), and a push's ``changes`` are one of those. What JSON Schema cannot say is in
the descriptions: which fields a create needs, that counters change only by ``increment``.
"""

from __future__ import annotations

from typing import Any

from waystation.core.protocol import NO_NUL
from waystation.core.schema import (
    MAX_SAFE_INTEGER,
    CollectionSpec,
    FieldSpec,
    FieldType,
    Schema,
)

_SCALARS: dict[FieldType, dict[str, Any]] = {
    "string": {"type": "string", "pattern": NO_NUL},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    "datetime": {"type": "string", "format": "date-time"},
    "counter": {"type": "integer"},
}


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """One field's values (without ``null``), within the limits the server enforces."""
    if spec.type == "array":
        out: dict[str, Any] = {"type": "array", "maxItems": spec.items_limit}
        if spec.items is not None:
            out["items"] = _scalar(spec.items)
            if spec.items == "string":
                out["items"]["maxLength"] = spec.item_length_limit
        return out
    if spec.type == "object":
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: _nullable(field_schema(member))
                for name, member in (spec.fields or {}).items()
            },
        }
    out = _scalar(spec.type)
    if spec.enum is not None:
        out["enum"] = list(spec.enum)
    if spec.min is not None:
        out["minimum"] = _plain(spec.min)
    if spec.max is not None:
        out["maximum"] = _plain(spec.max)
    if spec.type == "string":
        out["maxLength"] = spec.length_limit
    if spec.type == "counter":
        out |= {
            "minimum": -spec.delta_limit,
            "maximum": spec.delta_limit,
            "description": "a counter: only `increment` changes it, by this delta",
        }
    elif spec.monotonic:
        out["description"] = "monotonic: once true, stays true"
    return out


def _scalar(kind: FieldType) -> dict[str, Any]:
    out = dict(_SCALARS[kind])
    if kind == "integer":
        out |= {"minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}
    return out


def _plain(bound: float) -> float | int:
    """``10`` rather than ``10.0`` for a bound of an integer field."""
    return int(bound) if bound.is_integer() else bound


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def fields_schema(spec: CollectionSpec) -> dict[str, Any]:
    required = ", ".join(sorted(spec.required_on_create)) or "nothing"
    properties = {}
    for name, field in spec.fields.items():
        values = field_schema(field)
        properties[name] = values if name in spec.counters else _nullable(values)
    return {
        "title": f"{spec.name} fields",
        "description": f"Fields of a `{spec.name}` record (policy `{spec.policy}`). A create "
        f"needs {required}; an update sends only the fields it changes; "
        "`null` clears a field. An upsert may not set a counter; an "
        "increment sends only counters.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def add_collections(components: dict[str, Any], schema: Schema, ref: str) -> None:
    """Add ``Fields-<name>`` and ``Change-<name>`` for each collection to ``components``,
    name the collections in ``Change.collection``, and make a push's ``changes`` one of
    the ``Change-<name>``. ``ref`` is the template of a component reference."""
    names = sorted(schema.collections)
    components["Change"]["properties"]["collection"]["enum"] = names
    variants: dict[str, str] = {}
    for name in names:
        components[f"Fields-{name}"] = fields_schema(schema.collections[name])
        variant = f"Change-{name}"
        components[variant] = {
            "title": f"a change of {name}",
            "allOf": [{"$ref": ref.format(model="Change")}],
            "properties": {
                "collection": {"const": name},
                "fields": {"$ref": ref.format(model=f"Fields-{name}")},
            },
        }
        variants[name] = ref.format(model=variant)
    components["PushRequest"]["properties"]["changes"]["items"] = {
        "oneOf": [{"$ref": target} for target in variants.values()],
        "discriminator": {"propertyName": "collection", "mapping": variants},
    }
