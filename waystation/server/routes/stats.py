"""``GET /v1/sync/stats``: what administrators read to see which devices are behind,
failing or conflicting (aggregates of the op log; store/stats.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.errors import Forbidden, ValidationError
from waystation.core.protocol import ID_PATTERN
from waystation.server.auditing import audit_event, given, record
from waystation.server.context import caller, services
from waystation.server.responses import OrjsonResponse

router = APIRouter(prefix="/v1/sync")


@router.get("/stats")
async def stats(
    request: Request,
    user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    device_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    svc = services(request)
    principal = await caller(request)
    filters = given(user_id=user_id, device_id=device_id, since=since)
    if not principal.is_admin:
        await record(
            request,
            audit_event(
                request, "stats.read", principal, outcome="denied", details={"filters": filters}
            ),
        )
        raise Forbidden("sync stats are for administrators")
    since_ms = parse_since(since)
    await record(
        request, audit_event(request, "stats.read", principal, details={"filters": filters})
    )
    body = await run_in_threadpool(
        svc.store.sync_stats, user_id=user_id, device_id=device_id, since_ms=since_ms
    )
    return OrjsonResponse(body)


def parse_since(text: str | None, field: str = "since") -> int | None:
    """An RFC 3339 time with its offset (``2025-11-30T00:00:00Z``) as Unix milliseconds;
    raises ValidationError naming the query parameter ``field``."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        moment = None
    # "\x00": fromisoformat stops reading at a NUL, and takes what came before it
    if moment is None or moment.tzinfo is None or "T" not in text.upper() or "\x00" in text:
        raise ValidationError(
            f"{field}={text!r} is not an RFC 3339 time with an offset, such as "
            "2025-11-30T00:00:00Z",
            {"field": field},
        )
    return int(moment.timestamp() * 1000)
