"""Wire models of protocol v1 (docs/protocol.md): what clients send and what they get back.

Request bodies are parsed with these models; a push's changes are parsed one by one
(``parse_change``) so one malformed op is rejected alone and never fails its batch.
Responses on the hot paths (push results, pull pages) are plain dicts serialised with
orjson; their shape is documented here by the TypedDicts (core/wire_schemas.py has the
other answers), from which the server's OpenAPI document derives its JSON Schemas
(server/openapi.py). They forbid extra keys so that the document lists every key sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from pydantic import ValidationError as PydanticValidationError
from typing_extensions import TypedDict  # a TypedDict pydantic can read on Python 3.11

from waystation.core.errors import ValidationError
from waystation.core.validation import check_fields_shape

OpKind = Literal["upsert", "delete", "increment"]
OpStatus = Literal["applied", "duplicate", "conflict", "rejected"]
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
# Free text may hold anything but NUL (U+0000), which PostgreSQL text cannot store: refused
# as bad input rather than failing the request in the database.
NO_NUL = r"^[^\x00]*$"
MAX_CHANGES_PER_PUSH = 5000
MAX_VERSION = 2**31 - 1  # record versions are 32-bit integers in the database


class Change(BaseModel):
    """One op in a push: an upsert, delete or increment of one record."""

    model_config = ConfigDict(extra="forbid")

    op_id: str = Field(
        pattern=ID_PATTERN,
        description=("made on the device (UUIDv7); unique per user: the idempotency key of the op"),
    )
    collection: str = Field(
        min_length=1, max_length=64, pattern=NO_NUL, description="a declared collection"
    )
    record_id: str = Field(pattern=ID_PATTERN, description="made on the device (UUIDv7)")
    op: OpKind
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "upsert: the fields to set (a create carries the required and scope fields); "
            "increment: integer deltas of counter fields; delete: absent or {}"
        ),
    )
    hlc: str = Field(
        min_length=1,
        max_length=100,
        pattern=NO_NUL,
        description=(
            "the op's hybrid logical clock: WWWWWWWWWWWWWWW-CCCCC-NODE (wall ms, counter, "
            "device id), e.g. 001764496800000-00000-d-7f3a"
        ),
    )
    base_version: int = Field(
        default=0,
        ge=0,
        le=MAX_VERSION,
        description=("the record version the device last saw; 0 for a new record"),
    )
    created_at_client: dt.datetime | None = Field(
        default=None,
        description=(
            "when the user made the change (RFC 3339); kept for audit and delay statistics"
        ),
    )


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


def make_change(
    *,
    op_id: str,
    collection: str,
    record_id: str,
    op: OpKind,
    fields: dict[str, Any],
    hlc: str,
    base_version: int,
) -> Change | BadChange:
    """A change the server makes itself (``PUT /v1/records``, a conflict's resolution),
    built from its values and held to the rules of a pushed op: an id or fields that a push
    would refuse make a BadChange carrying the same error as the push's answer."""
    try:
        change = Change(
            op_id=op_id,
            collection=collection,
            record_id=record_id,
            op=op,
            fields=fields,
            hlc=hlc,
            base_version=base_version,
        )
    except PydanticValidationError as exc:
        return BadChange(op_id, describe_pydantic_error(exc))
    return _shaped(change)


def _shaped(change: Change) -> Change | BadChange:
    if change.fields:
        try:
            check_fields_shape(change.fields)
        except ValidationError as exc:
            return BadChange(change.op_id, exc)
    return change


class PushRequest(BaseModel):
    """``POST /v1/sync/push``. ``changes`` are parsed op by op (``parse_changes``), so the
    OpenAPI document describes each as a Change."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=ID_PATTERN, description="the device of the token")
    changes: list[Any] = Field(
        max_length=MAX_CHANGES_PER_PUSH, description=("the ops, oldest first; may be empty")
    )


class TokenRequest(BaseModel):
    """``POST /v1/auth/token``."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=1000)


class RefreshRequest(BaseModel):
    """``POST /v1/auth/refresh``."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(
        min_length=1,
        max_length=500,
        pattern=NO_NUL,
        description=("the refresh token of the last registration or refresh (single use)"),
    )


class DeviceRequest(BaseModel):
    """``POST /v1/devices``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        default="device",
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description=("shown to administrators"),
    )
    device_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description=(
            "the id the device already stamps its clocks with; the server makes one when absent"
        ),
    )


class RecordWrite(BaseModel):
    """``PUT /v1/records/{collection}/{id}``: the fields to set. The route reads the raw body
    itself (server/routes/records.py); this model describes it in the OpenAPI document.
    Other keys are ignored."""

    fields: dict[str, Any] = Field(description="only these fields change")


def described(text: str) -> Any:
    """A key's description in the OpenAPI document: ``Annotated[type, described(...)]``."""
    return Field(description=text)


@with_config(ConfigDict(extra="forbid"))
class ErrorBody(TypedDict):
    """What went wrong: branch on ``code`` and ``details``, show ``message`` to a person."""

    code: Annotated[str, described("e.g. VALIDATION_ERROR, FORBIDDEN, UNIQUE_VIOLATION")]
    message: Annotated[str, described("for a person: says what to do; never parse it")]
    details: Annotated[
        dict[str, Any],
        described(
            "machine-readable context: `field` (the offending input), `existing_id`, `limit`, "
            "`wipe`, `reason`, `version`/`expected`, ..."
        ),
    ]


@with_config(ConfigDict(extra="forbid"))
class OpResult(TypedDict):
    """The outcome of one pushed op, in the order the ops were sent."""

    op_id: Annotated[
        str | None,
        described("the op's id; null when the op was too malformed to have a readable one"),
    ]
    status: Annotated[
        OpStatus,
        described(
            "applied (merged), duplicate (applied before: treat as applied), conflict (held "
            "whole for review), rejected (invalid or forbidden: resending cannot succeed)"
        ),
    ]
    version: NotRequired[Annotated[int, described("the record's version after this op")]]
    seq: NotRequired[Annotated[str, described("the record's feed position after the batch")]]
    hlc: NotRequired[
        Annotated[
            str, described("the op's effective clock: adopt it when it differs from the one sent")
        ]
    ]
    restamped: NotRequired[
        Annotated[
            bool, described("true when the server replaced the op's clock (it ran too far ahead)")
        ]
    ]
    superseded: NotRequired[
        Annotated[
            list[str],
            described(
                "fields of the op that did not take effect because a newer or authoritative value "
                "stands; `_deleted` for a delete that did not delete"
            ),
        ]
    ]
    conflict_id: NotRequired[Annotated[str, described("the open conflict holding the op")]]
    error: NotRequired[
        Annotated[
            ErrorBody,
            described(
                "why the op conflicted or was rejected: VALIDATION_ERROR, FORBIDDEN, NOT_FOUND, "
                "UNIQUE_VIOLATION, MANUAL_REVIEW"
            ),
        ]
    ]
    duplicate: NotRequired[
        Annotated[
            bool,
            described(
                "true on a re-send of an op whose first outcome was a conflict or a rejection"
            ),
        ]
    ]


@with_config(ConfigDict(extra="forbid"))
class PulledChange(TypedDict):
    """The newest state of one record (a pull page's entry)."""

    collection: str
    id: str
    version: Annotated[int, described("the record's current version")]
    seq: Annotated[str, described("its position in the change feed")]
    deleted: Annotated[bool, described("true for a tombstone: delete the local record")]
    fields: Annotated[dict[str, Any], described("the record's fields; {} when deleted")]
    clocks: Annotated[
        dict[str, str],
        described("the HLC of each field's last write (counters: of their last increment)"),
    ]
    deleted_hlc: NotRequired[
        Annotated[
            str,
            described(
                "the tombstone's clock, once the record has been deleted (also after it came back)"
            ),
        ]
    ]
    conflict: Annotated[bool, described("true while the record has an open MANUAL_REVIEW conflict")]
    updated_at: Annotated[str, described("server time of the record's last change (RFC 3339)")]
