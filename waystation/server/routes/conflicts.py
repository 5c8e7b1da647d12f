"""Conflicts held for review: list, show, resolve (admins and health workers of the
record's scopes; patients and pharmacists get 403). docs/conflicts.md is the reference."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.protocol import ID_PATTERN, NO_NUL
from waystation.core.resolution import ResolveRequest
from waystation.server.auditing import audit_event
from waystation.server.body import read_json
from waystation.server.context import caller, services
from waystation.server.responses import OrjsonResponse

router = APIRouter(prefix="/v1/conflicts")
ConflictId = Annotated[str, Path(pattern=ID_PATTERN)]

MAX_LIMIT = 1000


@router.get("")
async def list_conflicts(
    request: Request,
    status: Literal["open", "resolved"] = "open",
    collection: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    record_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Response:
    """``{"conflicts": [...], "has_more"}``, oldest first; page on with ``after`` = the last
    id of the previous page."""
    svc = services(request)
    principal = await caller(request)
    page = await run_in_threadpool(
        svc.store.list_conflicts,
        principal,
        status=status,
        collection=collection,
        record_id=record_id,
        limit=min(limit, MAX_LIMIT),
        after=after,
    )
    return OrjsonResponse({"conflicts": page.conflicts, "has_more": page.has_more})


@router.get("/{conflict_id}")
async def get_conflict(request: Request, conflict_id: ConflictId) -> Response:
    svc = services(request)
    principal = await caller(request)
    body = await run_in_threadpool(svc.store.get_conflict, principal, conflict_id)
    return OrjsonResponse(body)


@router.post("/{conflict_id}/resolve")
async def resolve_conflict(request: Request, conflict_id: ConflictId) -> Response:
    """Apply the decision as new changes with fresh server clocks; 200 with the conflict
    (and ``changes``: what was written). 409 ALREADY_RESOLVED the second time."""
    svc = services(request)
    principal = await caller(request)
    body = await read_json(request, ResolveRequest, svc.settings.max_body_bytes)
    event = audit_event(request, "conflict.resolve", principal, target=f"conflict:{conflict_id}")
    resolved = await run_in_threadpool(
        svc.store.resolve_conflict, principal, conflict_id, body, audit=event
    )
    return OrjsonResponse(resolved)
