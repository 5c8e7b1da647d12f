"""What the OpenAPI document says of each operation: one table entry per route.

An entry names who may call the operation, its request body and, status by status, every
answer the server really sends (``answers``): a body shape for a success, or the error codes
an error status carries. Adding an answer is one line, e.g. ``429: fail("RATE_LIMITED")``.
server/openapi.py assembles the document; core/protocol.py and core/wire_schemas.py hold the
shapes; docs/protocol.md is the prose reference these summaries condense.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from pydantic.json_schema import JsonSchemaMode

from waystation.core import wire_schemas as wire
from waystation.core.digest import DigestAnswer
from waystation.core.protocol import (
    Change,
    DeviceRequest,
    PushRequest,
    RecordWrite,
    RefreshRequest,
    TokenRequest,
)
from waystation.core.resolution import ResolveRequest
from waystation.server.openapi_examples import (
    AUDIT_ENTRY,
    CONFLICT,
    DEVICE,
    ERROR_EXAMPLES,
    EVENT_STREAM,
    PULL_PAGE,
    PUSH_ANSWER,
    PUSH_BODY,
    RECORD,
    RESOLVED,
    STATS,
    STATUS,
    TOKEN,
)
from waystation.server.responses import API_PREFIX

__all__ = ["ERROR_EXAMPLES"]


class Auth(Enum):
    """Who may call an operation (its text ends the operation's description)."""

    NONE = "anyone: no token."
    ANY = "any user, with a user or a device token."
    USER = "a user token (POST /v1/auth/token); a device token gets 403 FORBIDDEN."
    DEVICE = "a device token (POST /v1/devices); a user token gets 403 FORBIDDEN."
    ADMIN = "administrators (user or device token); anyone else gets 403 FORBIDDEN."
    REVIEWER = (
        "admins, and health workers holding a scope of the record (user or device "
        "token); patients and pharmacists get 403 FORBIDDEN."
    )


CODE_MEANINGS = {
    "VALIDATION_ERROR": "malformed input; `details.field` names it",
    "UNAUTHORIZED": "no, malformed or badly signed token, or wrong credentials; "
    "`details.reason`: `expired` (refresh the token or log in), "
    "`session_ended`, `refresh_reused` or `disabled` (log in again)",
    "DEVICE_REVOKED": "the device was revoked: stop; wipe the replica when `details.wipe`",
    "FORBIDDEN": "authenticated, but not allowed",
    "NOT_FOUND": "no such thing, or one the caller may not see",
    "REQUEST_TIMEOUT": "the body sent nothing for `details.timeout_s` seconds; the "
    "connection is closed: send the request again",
    "STALE_UPDATE": "the record is not at the `If-Match` version (`details.version`, "
    "`details.expected`)",
    "ALREADY_RESOLVED": "the conflict was resolved before (`details` say how, by whom, when)",
    "UNIQUE_VIOLATION": "another live record holds the key (`details.existing_id`)",
    "MANUAL_REVIEW": "the write is held as an open conflict for a reviewer",
    "CURSOR_EXPIRED": "the cursor is below the tombstone horizon: re-sync from since=0",
    "PAYLOAD_TOO_LARGE": "body over `details.limit` bytes (counted after gzip decoding too)",
    "RATE_LIMITED": "too many failed logins, or too many at once: retry after "
    "`Retry-After` seconds (`details.retry_after`)",
    "NOT_READY": "the database is unreachable or not migrated",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One status of an operation: a body shape (``body``) or the error ``codes`` it may
    carry, response headers (names in ``HEADERS``), examples, and other media types."""

    text: str
    body: type[Any] | None = None
    codes: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    examples: dict[str, Any] = field(default_factory=dict)
    other_media: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The text, and each error code with what it means (here: ``text`` alone)."""
        if len(self.codes) == 1 and self.text:
            return f"`{self.codes[0]}`: {self.text}"
        lines = [self.text] if self.text else []
        lines += [f"- `{code}`: {CODE_MEANINGS[code]}" for code in self.codes]
        return "\n".join(lines)


def ok(
    body: type[Any] | None,
    text: str,
    *,
    example: Any = None,
    headers: tuple[str, ...] = (),
    other_media: dict[str, Any] | None = None,
) -> Answer:
    examples = {"example": {"value": example}} if example is not None else {}
    return Answer(text, body, headers=headers, examples=examples, other_media=other_media or {})


def fail(*codes: str, text: str = "", headers: tuple[str, ...] = ()) -> Answer:
    return Answer(text, codes=codes, headers=headers)


AUTH_ERRORS = fail("UNAUTHORIZED", "DEVICE_REVOKED", headers=("WWW-Authenticate",))
TOO_LARGE = fail("PAYLOAD_TOO_LARGE")
TIMEOUT = fail("REQUEST_TIMEOUT")  # any route that reads a body

HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "a validator of this answer: send it back in If-None-Match "
        "(pull) or If-Match (PUT)",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "always `Bearer`", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    },
    "Cache-Control": {
        "description": "`no-store`: no cache (a browser's, a proxy's) may keep the answer",
        "schema": {"type": "string"},
    },
}


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


@dataclass(frozen=True, slots=True)
class Operation:
    operation_id: str
    tag: str
    summary: str
    description: str
    auth: Auth
    answers: dict[int, Answer]
    body: type[Any] | None = None
    body_examples: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)  # name -> description
    headers: tuple[dict[str, Any], ...] = ()


SHAPES: list[tuple[type[Any], JsonSchemaMode]] = [
    *(
        (model, "validation")
        for model in (
            TokenRequest,
            DeviceRequest,
            RefreshRequest,
            PushRequest,
            Change,
            ResolveRequest,
            RecordWrite,
        )
    ),
    *(
        (shape, "serialization")
        for shape in (
            wire.ErrorAnswer,
            wire.TokenAnswer,
            wire.DeviceAnswer,
            wire.PushAnswer,
            wire.PullPage,
            wire.EventsAnswer,
            wire.StatusAnswer,
            wire.RecordAnswer,
            wire.ConflictPage,
            wire.Conflict,
            wire.ResolvedConflict,
            wire.StatsAnswer,
            wire.HealthAnswer,
            wire.ReadyAnswer,
            wire.AuditPage,
            DigestAnswer,
        )
    ),
]

TAGS = [
    {"name": "auth", "description": "Log in, register a device, refresh its token."},
    {"name": "sync", "description": "Push ops, pull changes, hear of new ones."},
    {
        "name": "records",
        "description": "Read and write one record (admin tools, "
        "integrations that keep no replica).",
    },
    {"name": "conflicts", "description": "Review the ops held for a person."},
    {"name": "audit", "description": "The audit trail: who did what, for administrators."},
    {"name": "health", "description": "Probes for load balancers and clients."},
]

INTRO = """\
Waystation's sync protocol v1: JSON over HTTP, `snake_case` keys, RFC 3339 UTC times.
The prose reference, with a first session in curl, is `docs/protocol.md`.

1. Log in (`POST /v1/auth/token`): a **user token**.
2. Register the device (`POST /v1/devices`, with the user token): a **device token** and
   a single-use refresh token. Push, pull and events need the device token.
3. Push the outbox (`POST /v1/sync/push`), pull with your cursor while `has_more`
   (`GET /v1/sync/pull`), and wait for news with `GET /v1/sync/events`.

Send tokens as `Authorization: Bearer <token>`. Every error, whatever its status, is
`{"error": {"code", "message", "details"}}`: branch on `code` and `details`, show
`message`. Malformed input is a `400 VALIDATION_ERROR` (never 422) whose `details.field`
names it; a `5xx` is a server defect, never an answer to bad input: retry the same ops.
Request bodies may be sent with `Content-Encoding: gzip`; answers of 500 bytes or more are
gzip'd when `Accept-Encoding` allows. An unknown path is `404 NOT_FOUND`; a method a
path does not have is `405 METHOD_NOT_ALLOWED`; a request the HTTP parser refuses (a
malformed header) is `400 VALIDATION_ERROR`. Text never holds NUL (U+0000).
"""

# The demo's (shortened: every collection is listed).
DIGEST = {
    "cursor": "25",
    "collections": {
        "notification_preferences": {
            "count": 0,
            "digest": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        },
        "patients": {
            "count": 3,
            "digest": "7278a58a29621f5be07fa9acb5c8b9d7cd08a8b92c715f929520beccc83fe755",
        },
    },
}

_SINCE = (
    "the `cursor` of the previous page (opaque); `0`, empty or absent: from the "
    "beginning. A cursor the server never issued: 400 (`details.field: since`); one "
    "below the tombstone horizon: 410 CURSOR_EXPIRED"
)
_COLLECTIONS = (
    "comma-separated collection names (all when absent); a cursor is valid only "
    "with the filter it was issued with"
)

_OPERATIONS = [
    (
        "get",
        "/healthz",
        Operation(
            "healthz",
            "health",
            "Liveness",
            "The process answers. Clients may use it as their connectivity check.",
            Auth.NONE,
            {200: ok(wire.HealthAnswer, "alive", example={"status": "ok"})},
        ),
    ),
    (
        "get",
        "/readyz",
        Operation(
            "readyz",
            "health",
            "Readiness",
            "The database is reachable and migrated to the revision this server expects.",
            Auth.NONE,
            {
                200: ok(wire.ReadyAnswer, "ready", example={"status": "ready", "revision": "0001"}),
                503: fail("NOT_READY"),
            },
        ),
    ),
    (
        "post",
        "/v1/auth/token",
        Operation(
            "login",
            "auth",
            "Log in",
            "Trade a username and password for a user token. The user token registers devices "
            "and reads records and status; sync needs a device token. A wrong username and a "
            "wrong password are not told apart.",
            Auth.NONE,
            {
                200: ok(wire.TokenAnswer, "a user token", example=TOKEN),
                400: fail("VALIDATION_ERROR"),
                401: fail(
                    "UNAUTHORIZED",
                    text="wrong username or password (not told apart), or a disabled account",
                    headers=("WWW-Authenticate",),
                ),
                408: TIMEOUT,
                413: TOO_LARGE,
                429: fail("RATE_LIMITED", headers=("Retry-After",)),
            },
            body=TokenRequest,
            body_examples={"amina": {"value": {"username": "amina", "password": "amina-demo"}}},
        ),
    ),
    (
        "post",
        "/v1/devices",
        Operation(
            "register_device",
            "auth",
            "Register a device",
            "Register a device of the calling user and get its device token and refresh token. "
            "A device may propose its own `device_id` (it stamped offline writes with it). "
            "Registering an id the same user holds re-issues its tokens (the previous refresh "
            "token stops working); an id held by another user is 403; a revoked id is 401 "
            "DEVICE_REVOKED (register under a new id).",
            Auth.USER,
            {
                200: ok(wire.DeviceAnswer, "the device's tokens", example=DEVICE),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN", text="a device token, or a device id of another user"),
                408: TIMEOUT,
                413: TOO_LARGE,
            },
            body=DeviceRequest,
            body_examples={"tablet": {"value": {"name": "Amina tablet", "device_id": "d-7f3a"}}},
        ),
    ),
    (
        "post",
        "/v1/auth/refresh",
        Operation(
            "refresh",
            "auth",
            "Refresh a device token",
            "Trade a refresh token for a new device token and a new refresh token. Refresh "
            "tokens are single-use: store the new one before anything else.",
            Auth.NONE,
            {
                200: ok(wire.DeviceAnswer, "new tokens", example=DEVICE),
                400: fail("VALIDATION_ERROR"),
                401: fail(
                    "UNAUTHORIZED",
                    "DEVICE_REVOKED",
                    text="unknown, used or replaced refresh "
                    "token (log in again), or a revoked device",
                    headers=("WWW-Authenticate",),
                ),
                408: TIMEOUT,
                413: TOO_LARGE,
            },
            body=RefreshRequest,
            body_examples={
                "refresh": {
                    "value": {"refresh_token": "d-7f3a.5_xb65B8IS43tKHh4px7-pEFykalBAk5I6XeP0dDkx4"}
                }
            },
        ),
    ),
    (
        "post",
        "/v1/sync/push",
        Operation(
            "push",
            "sync",
            "Push ops",
            "Send a batch of ops (at most 5000) made on one device. Ops are processed in order "
            "and each gets its own result: one bad op is rejected alone, never failing its "
            "batch. Re-sending an op (same `op_id`) is safe: it is applied once. Fold "
            "`server_hlc` into the device clock. The body may be gzip'd "
            "(`Content-Encoding: gzip`).",
            Auth.DEVICE,
            {
                200: ok(wire.PushAnswer, "one result per op, in order", example=PUSH_ANSWER),
                400: fail(
                    "VALIDATION_ERROR",
                    text="the body as a whole is malformed (not JSON, "
                    "not an object, more than 5000 changes, an unknown key, bad gzip)",
                ),
                403: fail("FORBIDDEN", text="a user token, or a `device_id` not the token's"),
                408: TIMEOUT,
                413: TOO_LARGE,
            },
            body=PushRequest,
            body_examples={"three ops": {"value": PUSH_BODY}},
        ),
    ),
    (
        "get",
        "/v1/sync/pull",
        Operation(
            "pull",
            "sync",
            "Pull changes",
            "The newest state of each record changed after `since` that the caller may see, in "
            "feed order, a page at a time: repeat with the returned `cursor` while `has_more`. "
            "Send the last `ETag` of the same request (or your cursor, quoted) in "
            "`If-None-Match`: while nothing is new the answer is a bodiless 304.",
            Auth.DEVICE,
            {
                200: ok(wire.PullPage, "a page of changes", example=PULL_PAGE, headers=("ETag",)),
                304: Answer("nothing new since the `If-None-Match` validator", headers=("ETag",)),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN", text="a user token"),
                410: fail("CURSOR_EXPIRED"),
            },
            parameters={
                "since": _SINCE,
                "limit": "page size (default 500); larger values are "
                "clamped to the server's maximum",
                "collections": _COLLECTIONS,
            },
            headers=(
                _header(
                    "If-None-Match",
                    "the `ETag` of an earlier answer to the same "
                    'request, or the cursor quoted ("42")',
                ),
            ),
        ),
    ),
    (
        "get",
        "/v1/sync/events",
        Operation(
            "events",
            "sync",
            "Hear of new changes",
            "Tells the device as soon as changes it may pull exist after `since` (its pull "
            "cursor). With `Accept: text/event-stream`: server-sent events (`event: changes`, "
            "`id:` a position for `Last-Event-ID`, a keepalive every 15 s, closed after 5 "
            'minutes: reconnect). Otherwise a long poll: `{"changed": true}` at once when '
            'changes exist, else after at most `wait` seconds `{"changed": false}`. `seq` is a '
            "hint, never a cursor: pull from your own.",
            Auth.DEVICE,
            {
                200: ok(
                    wire.EventsAnswer,
                    "news, or none within `wait`",
                    example={"changed": True, "seq": "1042"},
                    other_media={
                        "text/event-stream": {"schema": {"type": "string"}, "example": EVENT_STREAM}
                    },
                ),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN", text="a user token"),
                410: fail("CURSOR_EXPIRED"),
            },
            parameters={
                "since": _SINCE,
                "collections": _COLLECTIONS,
                "wait": "long poll: seconds to wait for news (default 25, at most 60)",
            },
            headers=(
                _header(
                    "Last-Event-ID",
                    "event stream: the `id` of the last event heard (used when `since` is absent)",
                ),
            ),
        ),
    ),
    (
        "get",
        "/v1/sync/digest",
        Operation(
            "digest",
            "sync",
            "Integrity digest",
            "Per collection, the number of live records the caller may see (the records a pull "
            "delivers) and a sha256 digest of them: a device computes the same over its copy "
            "of the server's state and compares, to prove it holds what the server holds. "
            "Every collection appears (count 0 when empty). `cursor` is the one a caught-up "
            "pull holds at the snapshot the digest was read in: a device whose cursor differs "
            "pulls first. The algorithm is in `docs/protocol.md` (Integrity digest).",
            Auth.DEVICE,
            {
                200: ok(DigestAnswer, "the digest of each collection", example=DIGEST),
                400: fail(
                    "VALIDATION_ERROR", text="an unknown collection (`details.field: collections`)"
                ),
                403: fail("FORBIDDEN", text="a user token"),
            },
            parameters={
                "collections": "comma-separated collection names, as for a pull (all when absent)"
            },
        ),
    ),
    (
        "get",
        "/v1/sync/status",
        Operation(
            "status",
            "sync",
            "Server and device status",
            "The server's time and clock, the protocol version, the collections with their "
            "policies, priorities and counters, the caller, and (device token) the device's "
            "last push, last pull and open conflicts.",
            Auth.ANY,
            {200: ok(wire.StatusAnswer, "the status", example=STATUS)},
        ),
    ),
    (
        "get",
        "/v1/sync/stats",
        Operation(
            "stats",
            "sync",
            "Sync statistics",
            "Aggregates of the op log: ops received by outcome, open conflicts, sync rate, per "
            "device counts and last contacts, and the delay between a change on a device and "
            "its arrival.",
            Auth.ADMIN,
            {
                200: ok(wire.StatsAnswer, "the statistics", example=STATS),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN"),
            },
            parameters={
                "user_id": "only this user's ops and devices",
                "device_id": "only this device",
                "since": "only ops received from this time (RFC 3339 with an offset, "
                "e.g. 2025-11-30T00:00:00Z)",
            },
        ),
    ),
    (
        "get",
        "/v1/records/{collection}/{record_id}",
        Operation(
            "get_record",
            "records",
            "Read a record",
            "One record with its `ETag` (its version, quoted). A deleted record is answered "
            "with `deleted: true`; a record outside the caller's scopes is answered exactly as "
            "a missing one (404).",
            Auth.ANY,
            {
                200: ok(wire.RecordAnswer, "the record", example=RECORD, headers=("ETag",)),
                400: fail("VALIDATION_ERROR", text="not a record id"),
                404: fail("NOT_FOUND"),
            },
            parameters={"collection": "a declared collection", "record_id": "the record's id"},
        ),
    ),
    (
        "put",
        "/v1/records/{collection}/{record_id}",
        Operation(
            "put_record",
            "records",
            "Write a record",
            "A server-side upsert of the given fields, stamped with the server's clock and "
            "checked like a pushed upsert (schema, writers, scopes, policy, unique keys). With "
            "`If-Match` the write is made only if the record is at that version. The body may "
            "be gzip'd.",
            Auth.ANY,
            {
                200: ok(wire.RecordAnswer, "written", example=RECORD, headers=("ETag",)),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN"),
                404: fail(
                    "NOT_FOUND", text="unknown collection, or a record outside the caller's scopes"
                ),
                408: TIMEOUT,
                409: fail("STALE_UPDATE", "MANUAL_REVIEW", "UNIQUE_VIOLATION"),
                413: TOO_LARGE,
            },
            body=RecordWrite,
            body_examples={"phone": {"value": {"fields": {"phone": "+254700000002"}}}},
            parameters={"collection": "a declared collection", "record_id": "the record's id"},
            headers=(
                _header(
                    "If-Match",
                    'the version the change is based on, quoted ("3"), '
                    "or `*` (unconditional, as when absent)",
                ),
            ),
        ),
    ),
    (
        "get",
        "/v1/conflicts",
        Operation(
            "list_conflicts",
            "conflicts",
            "List conflicts",
            "The conflicts the caller may review, oldest first, a page at a time.",
            Auth.REVIEWER,
            {
                200: ok(
                    wire.ConflictPage,
                    "a page of conflicts",
                    example={"conflicts": [CONFLICT], "has_more": False},
                ),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN"),
            },
            parameters={
                "status": "open (default) or resolved",
                "collection": "only this collection",
                "record_id": "only this record",
                "limit": "page size (default 100, at most 1000)",
                "after": "the last `id` of the previous page",
            },
        ),
    ),
    (
        "get",
        "/v1/conflicts/{conflict_id}",
        Operation(
            "get_conflict",
            "conflicts",
            "Read a conflict",
            "One conflict, in the shape of the list's entries.",
            Auth.REVIEWER,
            {
                200: ok(wire.Conflict, "the conflict", example=CONFLICT),
                400: fail("VALIDATION_ERROR", text="not a conflict id"),
                403: fail("FORBIDDEN"),
                404: fail("NOT_FOUND"),
            },
        ),
    ),
    (
        "post",
        "/v1/conflicts/{conflict_id}/resolve",
        Operation(
            "resolve_conflict",
            "conflicts",
            "Resolve a conflict",
            "Apply the reviewer's decision as new changes with fresh server clocks, which "
            "every replica pulls. `client_wins`: the held op is applied (400 for a "
            "UNIQUE_VIOLATION); `server_wins`: the server's values stand (the held op is "
            "dropped); `merge`: the held op with `fields` laid over it, on its own record or, "
            "with `target: existing`, on the record holding the key. Nothing changes when the "
            "request fails.",
            Auth.REVIEWER,
            {
                200: ok(
                    wire.ResolvedConflict, "resolved, with the changes written", example=RESOLVED
                ),
                400: fail("VALIDATION_ERROR"),
                403: fail("FORBIDDEN"),
                404: fail("NOT_FOUND"),
                408: TIMEOUT,
                409: fail("ALREADY_RESOLVED", "UNIQUE_VIOLATION"),
                413: TOO_LARGE,
            },
            body=ResolveRequest,
            body_examples={
                "client wins": {"value": {"resolution": "client_wins"}},
                "merge": {
                    "value": {
                        "resolution": "merge",
                        "fields": {"dose": "500 mg", "frequency": "twice daily"},
                    }
                },
            },
        ),
    ),
    (
        "get",
        "/v1/audit",
        Operation(
            "list_audit",
            "audit",
            "Read the audit trail",
            "The hash-chained audit trail, oldest first, a page at a time (repeat with `after` "
            "= the last `id` while `has_more`): logins, refreshes, registrations, pulls with "
            "the scopes of the records they delivered, pushes, record reads and writes, "
            "resolutions, stats and audit reads. Filters combine (all must match). Every read "
            "of the trail is itself recorded (`audit.read`, with the filters given), a refused "
            "one too (outcome `denied`); a read that cannot be recorded fails. The answer is "
            "never cached (`Cache-Control: no-store`).",
            Auth.ADMIN,
            {
                200: ok(
                    wire.AuditPage,
                    "a page of entries",
                    headers=("Cache-Control",),
                    example={"entries": [AUDIT_ENTRY], "has_more": False},
                ),
                400: fail(
                    "VALIDATION_ERROR",
                    text="a malformed filter (`details.field` names it): "
                    "a time that is not RFC 3339 with an offset, an `after` that is not an "
                    "entry id, a `limit` below 1, a NUL in a text filter",
                ),
                403: fail("FORBIDDEN", text="not an administrator (the refusal is recorded)"),
            },
            parameters={
                "user_id": "only entries whose actor is this user",
                "device_id": "only entries whose actor is this device",
                "scope": "only entries concerning records of this scope (e.g. "
                "`patient:p-1`: the pulls that delivered p-1's records)",
                "action": "only this action (e.g. `sync.pull`)",
                "since": "only entries at or after this time (RFC 3339 with an "
                "offset, e.g. 2025-11-30T00:00:00Z)",
                "until": "only entries before this time (RFC 3339 with an offset)",
                "after": "the last `id` of the previous page (absent: from the first)",
                "limit": "page size (default 100); larger values are clamped to 1000",
            },
        ),
    ),
]


def _no_store(path: str, operation: Operation) -> Operation:
    """``Cache-Control: no-store`` on every answer of a path under ``/v1/``, 401s included:
    the server sends it on all of them (server/responses.py, ``NoStoreMiddleware``)."""
    if not path.startswith(API_PREFIX):
        return operation
    answers = dict(operation.answers)
    if operation.auth is not Auth.NONE:
        answers.setdefault(401, AUTH_ERRORS)
    return replace(
        operation,
        answers={
            status: answer
            if "Cache-Control" in answer.headers
            else replace(answer, headers=(*answer.headers, "Cache-Control"))
            for status, answer in answers.items()
        },
    )


OPERATIONS: dict[tuple[str, str], Operation] = {
    (method, path): _no_store(path, operation) for method, path, operation in _OPERATIONS
}
