"""``GET /v1/audit``: the audit trail, for administrators (store/audit.py).

Filters: ``user_id`` and ``device_id`` (the actor), ``scope`` (entries concerning records
of that scope: ``patient:p-1`` lists the pulls that delivered p-1's records), ``action``,
``since`` <= at < ``until`` (RFC 3339). Oldest first; page on with ``after`` = the last id
of the previous page. Every read is itself recorded (``audit.read``), and so is a refused
one (outcome ``denied``).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.errors import Forbidden, ValidationError
from waystation.core.protocol import NO_NUL
from waystation.server.auditing import audit_event, given, record
from waystation.server.context import caller, services
from waystation.server.responses import OrjsonResponse
from waystation.server.routes.stats import parse_since
from waystation.store.port import AuditFilter

router = APIRouter(prefix="/v1")

MAX_LIMIT = 1000
_ENTRY_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only (str.isdigit takes '²' too)
MAX_ENTRY_ID = 2**63 - 1  # ids are 64-bit integers in the database
# Text filters are compared in the database, whose text cannot hold NUL (PostgreSQL).
Text = Annotated[str | None, Query(max_length=64, pattern=NO_NUL)]


@router.get("/audit")
async def list_audit(
    request: Request,
    user_id: Text = None,
    device_id: Text = None,
    scope: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    action: Text = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> Response:
    """``{"entries": [...], "has_more"}``; 403 FORBIDDEN for anyone but an admin."""
    svc = services(request)
    principal = await caller(request)
    asked = given(
        user_id=user_id,
        device_id=device_id,
        scope=scope,
        action=action,
        since=since,
        until=until,
        after=after,
        limit=min(limit, MAX_LIMIT) if "limit" in request.query_params else None,
    )
    if not principal.is_admin:
        await record(
            request,
            audit_event(
                request, "audit.read", principal, outcome="denied", details={"filters": asked}
            ),
        )
        raise Forbidden("the audit trail is for administrators")
    filters = AuditFilter(
        user_id, device_id, scope, action, parse_since(since), parse_since(until, "until")
    )
    if after is not None and (not _ENTRY_ID.fullmatch(after) or int(after) > MAX_ENTRY_ID):
        raise ValidationError(
            f"after={after!r} is not an entry id; use the id of the last "
            "entry of the previous page",
            {"field": "after"},
        )
    # Recorded before the read: a read of who saw what that cannot be recorded is refused.
    await record(request, audit_event(request, "audit.read", principal, details={"filters": asked}))
    page = await run_in_threadpool(
        svc.store.list_audit, filters, after=int(after or 0), limit=min(limit, MAX_LIMIT)
    )
    return OrjsonResponse(
        {"entries": page.entries, "has_more": page.has_more}, headers={"Cache-Control": "no-store"}
    )
