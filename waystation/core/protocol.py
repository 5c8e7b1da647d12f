"""Wire models of protocol v1 (docs/protocol.md): what clients send and what they get back.

Request bodies are parsed with these models; a push's changes are parsed one by one
(``parse_change``) so one malformed op is rejected alone and never fails its batch.
Responses on the hot paths (push results, pull pages) are plain dicts serialised with
orjson; their shape is documented here by the TypedDicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from waystation.core.errors import ValidationError
from waystation.core.validation import check_fields_shape

OpKind = Literal["upsert", "delete", "increment"]
OpStatus = Literal["applied", "duplicate", "conflict", "rejected"]
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_CHANGES_PER_PUSH = 5000
MAX_VERSION = 2**31 - 1  # record versions are 32-bit integers in the database


class Change(BaseModel):
    """One op in a push: an upsert, delete or increment of one record."""

    model_config = ConfigDict(extra="forbid")

    op_id: str = Field(pattern=ID_PATTERN)
    collection: str = Field(min_length=1, max_length=64)
    record_id: str = Field(pattern=ID_PATTERN)
    op: OpKind
    fields: dict[str, Any] = Field(default_factory=dict)
    hlc: str = Field(min_length=1, max_length=100)
    base_version: int = Field(default=0, ge=0, le=MAX_VERSION)
    created_at_client: dt.datetime | None = None


_CHANGE = TypeAdapter(Change)


def describe_pydantic_error(exc: PydanticValidationError, prefix: str = "") -> ValidationError:
    """The first problem of a pydantic error as a protocol ValidationError."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    path = f"{prefix}.{path}" if prefix and path else prefix or path
    return ValidationError(f"{path or 'body'}: {first['msg']}", {"field": path or "body"})


def parse_change(raw: Any) -> Change:
    """Parse one pushed op; raises ValidationError naming the bad field."""
    try:
        return _CHANGE.validate_python(raw)
    except PydanticValidationError as exc:
        raise describe_pydantic_error(exc) from None


@dataclass(frozen=True, slots=True)
class BadChange:
    """A pushed op that does not parse: its op id when it had a usable one, and why. It is
    rejected alone; the rest of its batch is applied."""

    op_id: str | None
    error: ValidationError


_CHANGES = TypeAdapter(list[Change])


def parse_changes(raws: Sequence[Any]) -> list[Change | BadChange]:
    """Every op of a push, in order. One pydantic call for the whole list when all of them
    are valid (the usual case, and 7% of a push's server time when made op by op);
    otherwise op by op, so each bad op gets its own error. An op whose fields nest too
    deep or hold an integer out of range is bad too: what is kept of every op (the op log,
    a conflict) must encode as JSON."""
    try:
        changes: list[Change] = _CHANGES.validate_python(raws)
    except PydanticValidationError:
        pass
    else:
        return [_shaped(change) for change in changes]
    parsed: list[Change | BadChange] = []
    for raw in raws:
        try:
            parsed.append(_shaped(parse_change(raw)))
        except ValidationError as exc:
            op_id = raw.get("op_id") if isinstance(raw, dict) else None
            parsed.append(BadChange(op_id if isinstance(op_id, str) else None, exc))
    return parsed


def _shaped(change: Change) -> Change | BadChange:
    if change.fields:
        try:
            check_fields_shape(change.fields)
        except ValidationError as exc:
            return BadChange(change.op_id, exc)
    return change


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=ID_PATTERN)
    changes: list[Any] = Field(max_length=MAX_CHANGES_PER_PUSH)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=500)


class DeviceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="device", min_length=1, max_length=200)
    device_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class ErrorBody(TypedDict):
    code: str
    message: str
    details: dict[str, Any]


class OpResult(TypedDict):
    op_id: str | None
    status: OpStatus
    version: NotRequired[int]
    seq: NotRequired[str]
    hlc: NotRequired[str]
    restamped: NotRequired[bool]
    superseded: NotRequired[list[str]]
    conflict_id: NotRequired[str]
    error: NotRequired[ErrorBody]
    duplicate: NotRequired[bool]


class PulledChange(TypedDict):
    collection: str
    id: str
    version: int
    seq: str
    deleted: bool
    fields: dict[str, Any]
    clocks: dict[str, str]
    deleted_hlc: NotRequired[str]
    conflict: bool
    updated_at: str
