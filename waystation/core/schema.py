"""Collections declared as data: fields, scopes, writers, policy, unique keys, priority.

An integrator replaces the shipped health schema with a TOML file of their own; nothing in
the engine names a collection. ``docs/schema.md`` is the guide to the file format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["patient", "health_worker", "pharmacist", "admin"]
ROLES: tuple[Role, ...] = ("patient", "health_worker", "pharmacist", "admin")
Policy = Literal["lww", "manual", "server_wins", "client_wins"]
FieldType = Literal[
    "string", "integer", "number", "boolean", "date", "datetime", "array", "object", "counter"
]
PUBLIC_SCOPE = "*"

# Limits the server enforces when the schema sets none (docs/schema.md, "Limits"): every
# record travels to every device of its scopes, so none may grow without bound.
DEFAULT_MAX_STRING_LENGTH = 10_000
DEFAULT_MAX_ITEMS = 1_000
DEFAULT_MAX_ITEM_LENGTH = 1_000
DEFAULT_MAX_RECORD_BYTES = 64 * 1024
DEFAULT_MAX_DELTA = 1_000_000_000
# The largest integer a JavaScript client holds exactly (Number.MAX_SAFE_INTEGER): every
# integer stored, counters' totals included, stays within +/- this.
MAX_SAFE_INTEGER = 2**53 - 1
_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class SchemaError(ValueError):
    """The schema file itself is wrong (raised when loading, never while syncing)."""


class FieldSpec(BaseModel):
    """One field: its type and the constraints the server checks on every write."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    enum: list[str | int] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, ge=1)  # characters; for arrays, items
    max_items: int | None = Field(default=None, ge=1)  # arrays
    max_item_length: int | None = Field(default=None, ge=1)  # characters of string items
    max_delta: int | None = Field(default=None, ge=1, le=MAX_SAFE_INTEGER)  # counters
    items: FieldType | None = None  # element type of an array
    fields: dict[str, FieldSpec] | None = None  # members of an object
    monotonic: bool = False  # a boolean that, once true, stays true whatever the clocks say

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.monotonic and self.type != "boolean":
            raise ValueError("only boolean fields can be monotonic")
        if self.items is not None and self.type != "array":
            raise ValueError("'items' is only for arrays")
        if self.fields is not None and self.type != "object":
            raise ValueError("'fields' is only for objects")
        if self.items in ("object", "array", "counter"):
            raise ValueError("array items must be a scalar type")
        if self.type == "object" and not self.fields:
            raise ValueError("an object declares its members under 'fields'")
        if self.type in ("array", "object", "boolean") and self.enum is not None:
            raise ValueError(f"'enum' does not apply to {self.type} fields")
        if self.type != "array" and (
            self.max_items is not None or self.max_item_length is not None
        ):
            raise ValueError("'max_items' and 'max_item_length' are only for arrays")
        if self.type == "array" and self.max_length is not None and self.max_items is not None:
            raise ValueError("give arrays 'max_items' ('max_length' is its older name), not both")
        if self.max_delta is not None and self.type != "counter":
            raise ValueError("'max_delta' is only for counters")
        if self.type == "counter" and (self.min is not None or self.max is not None):
            # Concurrent offline decrements are all accepted (they happened); a bound could
            # only be enforced by rejecting one of them after the fact.
            raise ValueError("counters take no min/max: offline decrements always count")
        for name, member in (self.fields or {}).items():
            if member.type == "counter" or member.monotonic:
                raise ValueError(
                    f"member {name!r}: counters and monotonic flags must be top-level fields"
                )
        return self

    @property
    def length_limit(self) -> int:
        """Characters a string may hold."""
        return self.max_length or DEFAULT_MAX_STRING_LENGTH

    @property
    def items_limit(self) -> int:
        """Items an array may hold."""
        return self.max_items or self.max_length or DEFAULT_MAX_ITEMS

    @property
    def item_length_limit(self) -> int:
        """Characters a string item of an array may hold."""
        return self.max_item_length or DEFAULT_MAX_ITEM_LENGTH

    @property
    def delta_limit(self) -> int:
        """The largest step, up or down, of one increment of a counter."""
        return self.max_delta or DEFAULT_MAX_DELTA


class CollectionSpec(BaseModel):
    """One collection. ``scopes`` are templates over the record's fields (``{id}`` is the
    record id); ``"*"`` makes the collection readable by every user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    policy: Policy = "lww"
    scopes: list[str]
    writers: list[Role] = Field(default_factory=lambda: list[Role](["admin"]))
    field_writers: dict[Role, list[str]] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    unique: list[list[str]] = Field(default_factory=list)
    priority: int = 0
    # The record's fields as stored JSON, checked on the merged state of every write.
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=256)
    fields: dict[str, FieldSpec]

    @model_validator(mode="after")
    def _check(self) -> CollectionSpec:
        names = set(self.fields)
        for name in names:
            if not _NAME.fullmatch(name) or name == "id":
                raise ValueError(f"field name {name!r}: use lower_snake_case, not 'id'")
        for name in self.required:
            if name not in names:
                raise ValueError(f"required field {name!r} is not declared")
        for key in self.unique:
            for name in key:
                if name not in names:
                    raise ValueError(f"unique key field {name!r} is not declared")
        for role, allowed in self.field_writers.items():
            for name in allowed:
                if name not in names:
                    raise ValueError(f"field_writers.{role}: field {name!r} is not declared")
        if not self.scopes:
            raise ValueError("declare at least one scope template (or '*' for everyone)")
        for template in self.scopes:
            for var in _TEMPLATE_VAR.findall(template):
                if var != "id" and var not in names:
                    raise ValueError(f"scope {template!r} names undeclared field {var!r}")
        for name in self.required:
            if self.fields[name].type == "counter":
                raise ValueError(f"counter field {name!r} cannot be required")
        return self

    @cached_property
    def counters(self) -> frozenset[str]:
        return frozenset(n for n, f in self.fields.items() if f.type == "counter")

    @cached_property
    def integer_fields(self) -> frozenset[str]:
        """Top-level integers and counters: what a record stored before limits were
        enforced may hold out of range."""
        return frozenset(n for n, f in self.fields.items() if f.type in ("integer", "counter"))

    @cached_property
    def monotonic(self) -> frozenset[str]:
        return frozenset(n for n, f in self.fields.items() if f.monotonic)

    @cached_property
    def is_public(self) -> bool:
        return PUBLIC_SCOPE in self.scopes

    @cached_property
    def scope_fields(self) -> frozenset[str]:
        """Fields that scope templates read; a create must carry them."""
        return frozenset(
            var for t in self.scopes for var in _TEMPLATE_VAR.findall(t) if var != "id"
        )

    @cached_property
    def required_on_create(self) -> frozenset[str]:
        """What a create must carry: the required fields and the ones scopes read."""
        return frozenset(self.required) | self.scope_fields

    def scopes_of(self, record_id: str, fields: Mapping[str, Any]) -> frozenset[str]:
        """The scopes a record with these fields belongs to (templates with a missing value
        are left out)."""
        out: set[str] = set()
        for template, names in self._scope_templates:
            values: dict[str, str] = {}
            for var in names:
                value = record_id if var == "id" else fields.get(var)
                if value is None or value == "":
                    break
                values[var] = str(value)
            else:
                out.add(template.format_map(values))
        return frozenset(out)

    @cached_property
    def _scope_templates(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each template with the variables it reads, parsed once (scopes_of runs per op)."""
        return tuple((t, tuple(_TEMPLATE_VAR.findall(t))) for t in self.scopes)

    def unique_keys_of(self, fields: Mapping[str, Any]) -> dict[str, str]:
        """``{key name: key value}`` for each unique key whose fields are all set."""
        keys: dict[str, str] = {}
        for key_name, names in self._unique_keys:
            values = [fields.get(name) for name in names]
            if None not in values:
                keys[key_name] = "\x1f".join(map(str, values))
        return keys

    @cached_property
    def _unique_keys(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((",".join(key), tuple(key)) for key in self.unique)


class Schema(BaseModel):
    """All collections of one deployment, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collections: dict[str, CollectionSpec]

    def get(self, name: str) -> CollectionSpec | None:
        return self.collections.get(name)

    def describe(self) -> list[dict[str, Any]]:
        """What ``/v1/sync/status`` tells clients about each collection."""
        return [
            {
                "name": c.name,
                "policy": c.policy,
                "priority": c.priority,
                "counters": sorted(c.counters),
            }
            for c in self.collections.values()
        ]


def parse_schema(data: Mapping[str, Any]) -> Schema:
    """Build a Schema from the decoded TOML (or JSON) document; raises SchemaError."""
    raw = data.get("collections")
    if not isinstance(raw, Mapping) or not raw:
        raise SchemaError("the schema needs a [collections.<name>] table for each collection")
    collections: dict[str, Any] = {}
    for name, body in raw.items():
        if not _NAME.fullmatch(name):
            raise SchemaError(f"collection name {name!r}: use lower_snake_case")
        if not isinstance(body, Mapping):
            raise SchemaError(f"collection {name!r}: expected a table, got {type(body).__name__}")
        if "name" in body:
            raise SchemaError(f"collection {name!r}: its name is the table's; remove 'name'")
        try:
            collections[name] = CollectionSpec.model_validate({"name": name, **body})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            prefix = f"collection {name!r}: {where}: " if where else f"collection {name!r}: "
            raise SchemaError(prefix + message) from None
    return Schema(collections=collections)


def load_schema(path: str | Path) -> Schema:
    """Read a schema file (TOML); raises SchemaError with the file named."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"cannot read schema {path}: {exc}") from None
    return parse_schema(data)


def health_schema() -> Schema:
    """The health schema shipped with Waystation (patients, encounters, prescriptions, ...)."""
    text = resources.files("waystation.schemas").joinpath("health.toml").read_text("utf-8")
    return parse_schema(tomllib.loads(text))
