"""Push, pull and status: the sync protocol proper."""

from __future__ import annotations

import hashlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation import PROTOCOL_VERSION
from waystation.core.access import Principal
from waystation.core.errors import Forbidden, ValidationError
from waystation.core.hlc import wall_ms
from waystation.core.protocol import PushRequest
from waystation.core.timefmt import rfc3339
from waystation.server.auth import require_device
from waystation.server.body import read_json
from waystation.server.context import Services, caller, services
from waystation.server.responses import OrjsonResponse
from waystation.store.pull import Cursor

router = APIRouter(prefix="/v1/sync")


@router.post("/push")
async def push(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    device_id = require_device(principal)
    body = await read_json(request, PushRequest, svc.settings.max_body_bytes)
    if body.device_id != device_id:
        raise Forbidden(f"device_id {body.device_id} is not this token's device ({device_id})",
                        {"field": "device_id"})
    results = await run_in_threadpool(svc.store.push, principal, body.changes)
    return OrjsonResponse({"results": results, "server_hlc": str(svc.store.clock.send())})


@router.get("/pull")
async def pull(
    request: Request,
    since: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    collections: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    svc = services(request)
    principal = await caller(request)
    require_device(principal)
    wanted = _collections(svc, collections)
    cursor = Cursor.parse(since, wanted)
    size = min(limit or svc.settings.pull_limit_default, svc.settings.pull_limit_max)
    page = await run_in_threadpool(svc.store.pull, principal, cursor, size, wanted)
    body = orjson.dumps(
        {"changes": page.changes, "cursor": str(page.cursor), "has_more": page.has_more}
    )
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


def _collections(svc: Services, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if svc.store.schema.get(n) is None]
    if unknown:
        raise ValidationError(f"unknown collection {unknown[0]!r}", {"field": "collections"})
    return sorted(set(names))


@router.get("/status")
async def status(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    return OrjsonResponse(await run_in_threadpool(_status, svc, principal))


def _status(svc: Services, principal: Principal) -> dict[str, object]:
    store = svc.store
    device: dict[str, object] | None = None
    if principal.device_id is not None:
        found = store.find_device(principal.device_id)
        device = {
            "id": principal.device_id,
            "last_push_at": rfc3339(found.last_push_at) if found else None,
            "last_pull_at": rfc3339(found.last_pull_at) if found else None,
            "open_conflicts": store.open_conflicts(principal.device_id),
        }
    return {
        "server_time": rfc3339(wall_ms()),
        "server_hlc": str(store.clock.send()),
        "protocol_version": PROTOCOL_VERSION,
        "cursor": str(store.current_cursor()),
        "collections": store.schema.describe(),
        "user": {"id": principal.user_id, "username": principal.username,
                 "role": principal.role, "scopes": sorted(principal.scopes)},
        "device": device,
    }
