"""Read and write one record directly (admin tools, integrations): GET and PUT with
If-Match for optimistic concurrency."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.access import Principal
from waystation.core.audit import AuditEvent
from waystation.core.errors import ERRORS_BY_CODE, NotFound, ValidationError, WaystationError
from waystation.core.protocol import ID_PATTERN, MAX_VERSION
from waystation.core.timefmt import rfc3339
from waystation.server.auditing import audit_event
from waystation.server.body import read_body
from waystation.server.context import Services, caller, services
from waystation.server.errors import error_response
from waystation.server.responses import OrjsonResponse
from waystation.store.port import StoredRecord

router = APIRouter(prefix="/v1/records")
_VERSION = re.compile(r"[0-9]{1,10}")  # ASCII digits only (str.isdigit takes '²' too)
RecordId = Annotated[str, Path(pattern=ID_PATTERN)]  # as a pushed op's record_id


def _visible(
    svc: Services, principal: Principal, collection: str, record_id: str
) -> tuple[StoredRecord, frozenset[str]]:
    """The record and its scopes; raises NotFound for one the caller may not see."""
    spec = svc.store.schema.get(collection)
    if spec is None:
        raise NotFound(f"unknown collection {collection!r}")
    found = svc.store.get_record(collection, record_id)
    # Records outside the caller's scopes are reported as missing: their existence is
    # itself information about a patient.
    scopes = spec.scopes_of(record_id, found.state.fields) if found else frozenset()
    if found is None or not principal.can_see(scopes):
        raise NotFound(f"{collection}/{record_id} not found")
    return found, scopes


def _read(
    svc: Services, principal: Principal, collection: str, record_id: str, event: AuditEvent
) -> StoredRecord:
    """A visible record, its delivery recorded in the audit trail (``record.get``)."""
    found, scopes = _visible(svc, principal, collection, record_id)
    svc.store.audit(replace(event, details={"version": found.state.version}, scopes=tuple(scopes)))
    return found


def _body(found: StoredRecord) -> dict[str, Any]:
    state = found.state
    return {
        "collection": state.collection,
        "id": state.id,
        "version": state.version,
        "seq": str(found.seq),
        "deleted": found.deleted,
        "fields": {} if found.deleted else state.fields,
        "clocks": state.clocks,
        "conflict": state.conflict,
        "updated_at": rfc3339(found.updated_at),
    }


@router.get("/{collection}/{record_id}")
async def get_record(request: Request, collection: str, record_id: RecordId) -> Response:
    svc = services(request)
    principal = await caller(request)
    event = audit_event(request, "record.get", principal, target=f"record:{collection}/{record_id}")
    found = await run_in_threadpool(_read, svc, principal, collection, record_id, event)
    return OrjsonResponse(_body(found), headers={"ETag": f'"{found.state.version}"'})


@router.put("/{collection}/{record_id}")
async def put_record(request: Request, collection: str, record_id: RecordId) -> Response:
    svc = services(request)
    principal = await caller(request)
    expected = _if_match(request.headers.get("if-match"))
    raw = await read_body(request, svc.settings.max_body_bytes)
    fields = _fields(raw)
    event = audit_event(request, "record.put", principal, target=f"record:{collection}/{record_id}")
    return await run_in_threadpool(
        _put, svc, principal, collection, record_id, fields, expected, event
    )


def _put(
    svc: Services,
    principal: Principal,
    collection: str,
    record_id: str,
    fields: dict[str, Any],
    expected: int | None,
    event: AuditEvent,
) -> Response:
    if svc.store.schema.get(collection) is None:
        raise NotFound(f"unknown collection {collection!r}")
    # A record the caller may not see goes through the same decision as a missing one
    # (core/apply.py), so the answer never tells the two apart.
    result = svc.store.put_record(principal, collection, record_id, fields, expected, audit=event)
    error = result.get("error")
    if error is not None:
        status = (
            409
            if result["status"] == "conflict"
            else ERRORS_BY_CODE.get(error["code"], WaystationError).status
        )
        return error_response(status, error["code"], error["message"], error["details"])
    found = svc.store.get_record(collection, record_id)
    assert found is not None
    return OrjsonResponse(_body(found), headers={"ETag": f'"{found.state.version}"'})


def _if_match(header: str | None) -> int | None:
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(text) or int(text) > MAX_VERSION:
        raise ValidationError(
            f'If-Match {header[:40]!r} is not a record version such as "3"', {"field": "If-Match"}
        )
    return int(text)


def _fields(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", {"field": "body"}) from None
    fields = body.get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, dict):
        raise ValidationError('body must be {"fields": {...}}', {"field": "fields"})
    return fields
