"""Examples shown in the OpenAPI document, taken from docs/protocol.md (captured from a
demo server; tokens shortened with ``…``)."""

from __future__ import annotations

from typing import Any

_HLC = "001795324100805-00000-d-7f3a"
_SERVER_HLC = "001795324100839-00000-s-b8a6e663"
_USER = {
    "id": "01a201a7-6188-7ed0-b3b5-180ea467fa0c",
    "username": "amina",
    "role": "health_worker",
    "scopes": ["facility:f-1"],
}

TOKEN: dict[str, Any] = {
    "access_token": "u.01a201a7-6188-7ed0-b3b5-180ea467fa0c.0.1797916175.…",
    "token_type": "bearer",
    "expires_in": 3600,
    "user": _USER,
}

DEVICE: dict[str, Any] = {
    "device_id": "d-7f3a",
    "access_token": "d.d-7f3a.0.1797916175.…",
    "token_type": "bearer",
    "expires_in": 2592000,
    "refresh_token": "d-7f3a.5_xb65B8IS43tKHh4px7-pEFykalBAk5I6XeP0dDkx4",
}

PUSH_BODY: dict[str, Any] = {
    "device_id": "d-7f3a",
    "changes": [
        {
            "op_id": "op-0001",
            "collection": "symptom_logs",
            "record_id": "019ab0f0-0000-7000-8000-000000000001",
            "op": "upsert",
            "fields": {
                "patient_id": "p-2",
                "facility_id": "f-1",
                "date": "2025-11-30",
                "severity": 3,
            },
            "hlc": _HLC,
            "base_version": 0,
            "created_at_client": "2025-11-30T10:00:00Z",
        },
        {
            "op_id": "c1-1",
            "collection": "pharmacy_inventory",
            "record_id": "01a201a7-63f9-7d02-b571-2ca7998330e7",
            "op": "increment",
            "fields": {"quantity": -5},
            "hlc": "001795324160604-00000-d-7f3a",
        },
        {
            "op_id": "a-6",
            "collection": "alerts",
            "record_id": "019ab0f0-0000-7000-8000-0000000000a1",
            "op": "delete",
            "hlc": "001795324415292-00000-d-7f3a",
            "base_version": 3,
        },
    ],
}

PUSH_ANSWER: dict[str, Any] = {
    "results": [
        {"op_id": "op-0001", "status": "applied", "version": 1, "hlc": _HLC, "seq": "26"},
        {"op_id": "op-0001", "status": "duplicate", "version": 1, "hlc": _HLC, "seq": "26"},
        {
            "op_id": "op-0003",
            "status": "conflict",
            "conflict_id": "01a201a7-c0e5-7f08-9c2c-15922e2265aa",
            "error": {
                "code": "UNIQUE_VIOLATION",
                "message": "another symptom_logs record "
                "(019ab0f0-0000-7000-8000-000000000001) already has "
                "patient_id,date = p-2, 2025-11-30",
                "details": {"existing_id": "019ab0f0-0000-7000-8000-000000000001"},
            },
        },
        {
            "op_id": "op-0004",
            "status": "rejected",
            "error": {
                "code": "VALIDATION_ERROR",
                "message": "fields.severity: 11 is above the maximum 10",
                "details": {"field": "fields.severity"},
            },
        },
        {
            "op_id": "op-0005",
            "status": "applied",
            "version": 1,
            "hlc": "001795324100837-00002-s-b8a6e663",
            "restamped": True,
            "seq": "27",
        },
    ],
    "server_hlc": _SERVER_HLC,
}

_CLOCKS = {
    "patient_id": _HLC,
    "facility_id": _HLC,
    "date": _HLC,
    "severity": "001795324100805-00001-d-7f3a",
}

PULL_PAGE: dict[str, Any] = {
    "changes": [
        {
            "collection": "symptom_logs",
            "id": "019ab0f0-0000-7000-8000-000000000001",
            "version": 3,
            "seq": "42",
            "deleted": False,
            "fields": {
                "patient_id": "p-2",
                "facility_id": "f-1",
                "date": "2025-11-30",
                "severity": 5,
            },
            "clocks": _CLOCKS,
            "conflict": False,
            "updated_at": "2026-11-22T05:11:28.974Z",
        },
        {
            "collection": "alerts",
            "id": "019ab0f0-0000-7000-8000-0000000000a1",
            "version": 4,
            "seq": "43",
            "deleted": True,
            "fields": {},
            "clocks": {"title": "001795324166134-00000-d-7f3a"},
            "conflict": False,
            "updated_at": "2026-11-22T05:13:35.362Z",
            "deleted_hlc": "001795324415292-00000-d-7f3a",
        },
    ],
    "cursor": "43",
    "has_more": False,
}

EVENT_STREAM = 'retry: 3000\n\nevent: changes\nid: 1042\ndata: {"seq": "1042"}\n\n'

STATUS: dict[str, Any] = {
    "server_time": "2026-11-22T05:09:35.487Z",
    "server_hlc": "001795324175487-00000-s-b8a6e663",
    "protocol_version": 1,
    "cursor": "35",
    "collections": [
        {"name": "patients", "policy": "lww", "priority": 0, "counters": []},
        {"name": "prescriptions", "policy": "manual", "priority": 1, "counters": []},
        {"name": "pharmacy_inventory", "policy": "lww", "priority": 0, "counters": ["quantity"]},
    ],
    "user": _USER,
    "device": {
        "id": "d-7f3a",
        "last_push_at": "2026-11-22T05:09:35.422Z",
        "last_pull_at": "2026-11-22T05:08:54.198Z",
        "open_conflicts": 2,
    },
}

RECORD: dict[str, Any] = {
    "collection": "patients",
    "id": "p-2",
    "version": 2,
    "seq": "38",
    "deleted": False,
    "fields": {"name": "Baraka Mwangi", "facility_id": "f-1", "phone": "+254700000002"},
    "clocks": {
        "name": "001795324077049-00015-demo-seed",
        "facility_id": "001795324077049-00015-demo-seed",
        "phone": "001795324194994-00000-s-b8a6e663",
    },
    "conflict": False,
    "updated_at": "2026-11-22T05:09:54.994Z",
}

CONFLICT: dict[str, Any] = {
    "id": "01a201b3-0000-7000-8000-000000000001",
    "collection": "prescriptions",
    "record_id": "01a201b2-0000-7000-8000-000000000001",
    "kind": "MANUAL_REVIEW",
    "op_id": "01a201b2-0000-7000-8000-0000000000f1",
    "op": "upsert",
    "hlc": "001764496805000-00000-d-7f3a",
    "base_version": 1,
    "server_fields": {"dose": "1 g", "frequency": "twice daily"},
    "client_fields": {"dose": "250 mg", "frequency": "once daily"},
    "existing_id": None,
    "hidden": [],
    "device_id": "d-7f3a",
    "user_id": "01a201a0-0000-7000-8000-000000000001",
    "status": "open",
    "created_at": "2025-11-30T10:00:05.000Z",
    "resolution": None,
    "target": None,
    "resolved_by": None,
    "resolved_at": None,
}

RESOLVED: dict[str, Any] = {
    **CONFLICT,
    "status": "resolved",
    "resolution": "client_wins",
    "resolved_by": "01a201a5-0000-7000-8000-000000000001",
    "resolved_at": "2025-11-30T11:02:00.000Z",
    "changes": [
        {
            "collection": "prescriptions",
            "record_id": "01a201b2-0000-7000-8000-000000000001",
            "op": "upsert",
            "version": 4,
            "seq": "1207",
            "hlc": "001764500520000-00000-s-1a2b3c4d",
        }
    ],
}

STATS: dict[str, Any] = {
    "total": 1250,
    "applied": 1180,
    "duplicate": 40,
    "conflicts": 12,
    "rejected": 18,
    "open_conflicts": 3,
    "sync_rate": 0.976,
    "by_device": [
        {
            "device_id": "d-7f3a",
            "user_id": "01a201a0-0000-7000-8000-000000000001",
            "total": 310,
            "applied": 300,
            "duplicate": 4,
            "conflicts": 2,
            "rejected": 4,
            "last_push_at": "2025-11-30T10:00:03.000Z",
            "last_pull_at": "2025-11-30T10:00:04.000Z",
            "revoked": False,
        }
    ],
    "delay_ms": {"p50": 4200, "p95": 86400000},
}

AUDIT_ENTRY: dict[str, Any] = {
    "id": "3",
    "at": "2026-12-05T10:53:59.857Z",
    "action": "sync.pull",
    "user_id": "01a245d6-aad3-7fad-9dd2-6c909633d267",
    "device_id": "d-tablet1",
    "client_address": "127.0.0.1",
    "outcome": "ok",
    "target": None,
    "details": {"count": 8, "cursor": "14", "has_more": True, "since": "5"},
    "scopes": ["facility:f-1", "patient:p-1", "patient:p-2"],
    "prev_hash": "b9aae5816fb74941e72c72947e051602ceb64783ceea6b9ebdd719e9071c5c18",
    "hash": "fa1308ccfd3cde9f07a346cedfa28c7fdefd27d324b35fe63dd297b7d4409005",
}


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "VALIDATION_ERROR": _error(
        "VALIDATION_ERROR",
        "since='abc' is not a cursor this server issued; use 0 or the cursor of the previous pull",
        field="since",
    ),
    "UNAUTHORIZED": _error(
        "UNAUTHORIZED",
        "token expired: refresh it (POST /v1/auth/refresh) or log in again",
        reason="expired",
    ),
    "DEVICE_REVOKED": _error(
        "DEVICE_REVOKED", "this device was revoked by an administrator", wipe=True
    ),
    "FORBIDDEN": _error(
        "FORBIDDEN", "sync needs a device token: register with POST /v1/devices first"
    ),
    "NOT_FOUND": _error("NOT_FOUND", "patients/p-2 not found"),
    "REQUEST_TIMEOUT": _error(
        "REQUEST_TIMEOUT", "the request body sent nothing for 30 s; send it again", timeout_s=30.0
    ),
    "STALE_UPDATE": _error(
        "STALE_UPDATE",
        "patients/p-2 is at version 2, not 1: reload it and apply your change again",
        version=2,
        expected=1,
    ),
    "ALREADY_RESOLVED": _error(
        "ALREADY_RESOLVED",
        "conflict 01a201b3-… was already resolved (client_wins) by "
        "01a201a5-… at 2025-11-30T11:02:00.000Z",
        resolution="client_wins",
        target=None,
        resolved_by="01a201a5-…",
        resolved_at="2025-11-30T11:02:00.000Z",
    ),
    "UNIQUE_VIOLATION": _error(
        "UNIQUE_VIOLATION",
        "another symptom_logs record (019ab0f0-…-000000000001) already "
        "has patient_id,date = p-2, 2025-11-30",
        existing_id="019ab0f0-…-000000000001",
    ),
    "MANUAL_REVIEW": _error(
        "MANUAL_REVIEW",
        "changed on the server by another device since version 1 (dose); held for review",
    ),
    "CURSOR_EXPIRED": _error(
        "CURSOR_EXPIRED",
        "cursor 12 is older than the tombstone horizon (4000): re-sync "
        "from since=0, keeping your pending changes",
        horizon="4000",
    ),
    "PAYLOAD_TOO_LARGE": _error(
        "PAYLOAD_TOO_LARGE",
        "request body over the limit of 16777216 bytes (after gzip "
        "decoding); a push can be split into several smaller ones",
        limit=16777216,
    ),
    "RATE_LIMITED": _error(
        "RATE_LIMITED", "too many failed logins; try again in 4 s", retry_after=3.6
    ),
    "NOT_READY": _error(
        "NOT_READY", "database at revision 0001, expected 0002: run the migrations"
    ),
}
