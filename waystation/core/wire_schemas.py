"""The answers of protocol v1, as the server sends them (docs/protocol.md).

Every answer is a plain dict serialised with orjson; these TypedDicts name its keys, and the
server's OpenAPI document derives its JSON Schemas from them (server/openapi.py), so a
client written in another language is told exactly what arrives. Push results and pulled
changes live beside the request models in core/protocol.py. Every shape forbids extra keys:
a key the server sends and these do not name fails the conformance test
(tests/server/test_openapi_conformance.py), so the document cannot fall behind the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # a TypedDict pydantic can read on Python 3.11

from waystation.core.audit import ACTIONS
from waystation.core.protocol import ErrorBody, OpKind, OpResult, PulledChange, described
from waystation.core.resolution import ConflictKind, Resolution, Target
from waystation.core.schema import Policy, Role

_STRICT = ConfigDict(extra="forbid")


Time = Annotated[str, described("RFC 3339, UTC, milliseconds: 2025-11-30T10:00:03.000Z")]
OptionalTime = Annotated[str | None, described("RFC 3339, UTC; null when it never happened")]


@with_config(_STRICT)
class ErrorAnswer(TypedDict):
    """Every error, whatever the status: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


@with_config(_STRICT)
class UserInfo(TypedDict):
    """The caller: who they are, their role and their scope grants."""

    id: str
    username: str
    role: Role
    scopes: Annotated[list[str], described("grants such as patient:p-1 or facility:f-1")]


@with_config(_STRICT)
class TokenAnswer(TypedDict):
    """A user token: it names the user only (register a device to sync)."""

    access_token: Annotated[str, described("opaque; send as `Authorization: Bearer <token>`")]
    token_type: Literal["bearer"]
    expires_in: Annotated[int, described("seconds until the token expires")]
    user: UserInfo


@with_config(_STRICT)
class DeviceAnswer(TypedDict):
    """A device token and a single-use refresh token (store both; never the password)."""

    device_id: str
    access_token: Annotated[str, described("the device token: push, pull and events need it")]
    token_type: Literal["bearer"]
    expires_in: Annotated[int, described("seconds until the access token expires")]
    refresh_token: Annotated[
        str, described("trade it for new tokens with POST /v1/auth/refresh; it works once")
    ]


@with_config(_STRICT)
class PushAnswer(TypedDict):
    """One result per op, in order; one bad op never fails its batch."""

    results: list[OpResult]
    server_hlc: Annotated[
        str, described("the server's clock after the push: fold it into the device clock")
    ]


@with_config(_STRICT)
class PullPage(TypedDict):
    """Changes after ``since`` in feed order, newest state of each record only."""

    changes: list[PulledChange]
    cursor: Annotated[
        str, described("send it back as `since` for the next page (with the same `collections`)")
    ]
    has_more: Annotated[bool, described("pull again with `cursor` while true")]


@with_config(_STRICT)
class EventsAnswer(TypedDict):
    """The long-poll form of ``GET /v1/sync/events``."""

    changed: Annotated[bool, described("true: changes after `since` exist; pull them")]
    seq: Annotated[
        str | None,
        described("a hint (the newest change known), never a cursor; null when nothing changed"),
    ]


@with_config(_STRICT)
class CollectionInfo(TypedDict):
    name: str
    policy: Policy
    priority: Annotated[int, described("push higher priorities first")]
    counters: Annotated[list[str], described("fields that change only by `increment`")]


@with_config(_STRICT)
class DeviceState(TypedDict):
    id: str
    last_push_at: OptionalTime
    last_pull_at: OptionalTime
    open_conflicts: Annotated[int, described("open conflicts raised by this device's ops")]


@with_config(_STRICT)
class StatusAnswer(TypedDict):
    """The server's clock and collections, the caller, and the device's sync state."""

    server_time: Time
    server_hlc: Annotated[str, described("fold it into the device clock, as after a push")]
    protocol_version: Literal[1]
    cursor: Annotated[str, described("the newest seq on the server (pull with your own cursor)")]
    collections: list[CollectionInfo]
    user: UserInfo
    device: Annotated[DeviceState | None, described("null with a user token")]


@with_config(_STRICT)
class RecordAnswer(TypedDict):
    """One record as ``GET``/``PUT /v1/records`` give it (its ``ETag`` is the version)."""

    collection: str
    id: str
    version: int
    seq: str
    deleted: bool
    fields: Annotated[dict[str, Any], described("{} when deleted")]
    clocks: Annotated[dict[str, str], described("the HLC of each field's last write")]
    conflict: Annotated[bool, described("true while an open MANUAL_REVIEW conflict holds it")]
    updated_at: Time


@with_config(_STRICT)
class Conflict(TypedDict):
    """An op held for a reviewer, with both sides. A side the reviewer may not see (a
    record outside their scopes) is named in ``hidden`` and its ids and fields are null."""

    id: str
    collection: str
    record_id: Annotated[str | None, described("the held op's record; null when hidden")]
    kind: ConflictKind
    op_id: str
    op: Annotated[OpKind, described("the held op's kind")]
    hlc: Annotated[str, described("the held op's effective clock")]
    base_version: int
    server_fields: Annotated[
        dict[str, Any] | None,
        described(
            "the server's values when the conflict opened (UNIQUE_VIOLATION: the fields of "
            "`existing_id`); `_deleted: true` when the record had been deleted; null when "
            "that side is hidden"
        ),
    ]
    client_fields: Annotated[
        dict[str, Any] | None,
        described(
            "the held op's fields (`_deleted: true` for a held delete); null when its record "
            "is hidden"
        ),
    ]
    existing_id: Annotated[
        str | None,
        described("UNIQUE_VIOLATION: the record holding the key; null when hidden or not one"),
    ]
    hidden: Annotated[
        list[Literal["record", "existing"]],
        described("the sides outside the caller's scopes, shown without ids or fields"),
    ]
    device_id: Annotated[str | None, described("the device that sent the op; null for none")]
    user_id: str
    status: Literal["open", "resolved"]
    created_at: Time
    resolution: Resolution | None
    target: Target | None
    resolved_by: Annotated[str | None, described("the reviewer's user id")]
    resolved_at: OptionalTime


@with_config(_STRICT)
class ConflictPage(TypedDict):
    conflicts: list[Conflict]
    has_more: Annotated[bool, described("ask again with `after` = the last id of this page")]


@with_config(_STRICT)
class WrittenChange(TypedDict):
    """A change a resolution wrote (stamped with a fresh server clock; every replica
    pulls it)."""

    collection: str
    record_id: str
    op: Literal["upsert", "delete"]
    version: int | None
    seq: str | None
    hlc: str | None


@with_config(_STRICT)
class ResolvedConflict(Conflict):
    """The conflict, resolved, and what the resolution wrote."""

    changes: list[WrittenChange]


@with_config(_STRICT)
class DeviceStats(TypedDict):
    device_id: str
    user_id: str
    total: int
    applied: int
    duplicate: int
    conflicts: int
    rejected: int
    last_push_at: OptionalTime
    last_pull_at: OptionalTime
    revoked: bool


@with_config(_STRICT)
class Delays(TypedDict):
    """Receive time minus client creation time, in milliseconds (null: no data)."""

    p50: int | None
    p95: int | None


@with_config(_STRICT)
class StatsAnswer(TypedDict):
    """Aggregates of the op log: every op received counts, re-sends included."""

    total: int
    applied: int
    duplicate: int
    conflicts: int
    rejected: int
    open_conflicts: int
    sync_rate: Annotated[
        float | None, described("(applied + duplicate) / total; null when nothing was received")
    ]
    by_device: list[DeviceStats]
    delay_ms: Delays


@with_config(_STRICT)
class HealthAnswer(TypedDict):
    status: Literal["ok"]


@with_config(_STRICT)
class ReadyAnswer(TypedDict):
    status: Literal["ready"]
    revision: Annotated[str, described("the database's migration revision")]


@with_config(_STRICT)
class AuditEntry(TypedDict):
    """One link of the hash-chained audit trail: who did what, when, to what."""

    id: Annotated[
        str, described("1, 2, 3, ... without gaps; page on with `after` = the last id of a page")
    ]
    at: Time
    action: Annotated[
        str, described(f"what was done: {', '.join(ACTIONS)}, ... (docs/operations.md, section 7)")
    ]
    user_id: Annotated[
        str | None,
        described(
            "the acting user (`cli` for the admin commands run on the server's machine); null "
            "when unknown (a login with a name no user has)"
        ),
    ]
    device_id: Annotated[str | None, described("the acting device; null for a user token")]
    client_address: Annotated[str | None, described("the caller's IP address")]
    outcome: Annotated[
        str,
        described(
            "ok; denied (authentication or authorisation refused); rejected (refused for its "
            "content); conflict (a write held for review)"
        ),
    ]
    target: Annotated[
        str | None,
        described(
            "what was acted on, as `kind:id`: record:patients/p-2, device:d-7f3a, "
            "conflict:<id>, user:<id>; null when nothing in particular"
        ),
    ]
    details: Annotated[
        dict[str, Any],
        described(
            "what the action carries: a pull's cursor range and count, a push's counts by "
            "status, the filters of a read, a refusal's reason"
        ),
    ]
    scopes: Annotated[
        list[str],
        described("the scopes of the records concerned (a pull's: of every record it delivered)"),
    ]
    prev_hash: Annotated[str, described("the `hash` of the entry before (64 zeros for the first)")]
    hash: Annotated[
        str,
        described(
            "SHA-256 (hex) over `prev_hash` and this entry: an edited, deleted or inserted "
            "entry breaks the chain (`waystation audit verify`)"
        ),
    ]


@with_config(_STRICT)
class AuditPage(TypedDict):
    """Entries matching the filters, oldest first."""

    entries: list[AuditEntry]
    has_more: Annotated[bool, described("ask again with `after` = the last id of this page")]
