"""Push, pull and status: the sync protocol proper."""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, replace
from typing import Annotated, NamedTuple

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation import PROTOCOL_VERSION
from waystation.core.access import Principal
from waystation.core.audit import AuditEvent
from waystation.core.errors import Forbidden, ValidationError
from waystation.core.hlc import wall_ms
from waystation.core.protocol import PushRequest
from waystation.core.timefmt import rfc3339
from waystation.server.auditing import audit_event
from waystation.server.auth import require_device
from waystation.server.body import read_json
from waystation.server.context import Services, caller, services
from waystation.server.readahead import ReadAhead
from waystation.server.responses import (
    GZIP_MIN_SIZE,
    PULL_GZIP_LEVEL,
    OrjsonResponse,
    accepts_gzip,
    gzip_bytes,
    gzip_pieces,
)
from waystation.store.port import Cursor, FeedState, Page

router = APIRouter(prefix="/v1/sync")


@router.post("/push")
async def push(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    device_id = require_device(principal)
    body = await read_json(request, PushRequest, svc.settings.max_body_bytes)
    if body.device_id != device_id:
        raise Forbidden(
            f"device_id {body.device_id} is not this token's device ({device_id})",
            {"field": "device_id"},
        )
    results = await run_in_threadpool(
        svc.store.push, principal, body.changes, audit=audit_event(request, "sync.push", principal)
    )
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
    key = _PullKey(
        principal,
        cursor,
        size,
        tuple(wanted) if wanted else None,
        accepts_gzip(request.headers.get("accept-encoding")),
    )
    etags = _etags(request.headers.get("if-none-match"))
    answer = await run_in_threadpool(
        _serve,
        svc,
        _read_ahead(request, svc),
        key,
        etags,
        audit_event(request, "sync.pull", principal),
    )
    if answer.etag in etags:
        return Response(status_code=304, headers={"ETag": answer.etag})
    headers = {"ETag": answer.etag}
    if answer.gzipped:
        headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(answer.body, media_type="application/json", headers=headers)


class _PullKey(NamedTuple):
    """Everything a pull answer depends on besides the data (the read-ahead's key)."""

    principal: Principal
    cursor: Cursor
    size: int
    collections: tuple[str, ...] | None
    gzip: bool


@dataclass(frozen=True, slots=True)
class _PullAnswer:
    body: bytes  # gzip'd when ``gzipped``
    etag: str
    gzipped: bool
    cursor: Cursor
    has_more: bool
    state: FeedState  # of the snapshot the page was read in
    count: int  # changes in the page
    scopes: tuple[str, ...]  # of the page's records (Page.scopes)


def _read_ahead(request: Request, svc: Services) -> ReadAhead[_PullAnswer] | None:
    """The app's read-ahead (server/readahead.py), made on first use; None when off."""
    if not svc.settings.pull_read_ahead:
        return None
    ahead: ReadAhead[_PullAnswer] | None = getattr(request.app.state, "pull_read_ahead", None)
    if ahead is None:  # on the event loop: no other request makes one meanwhile
        ahead = ReadAhead()
        request.app.state.pull_read_ahead = ahead
    return ahead


def _serve(
    svc: Services,
    ahead: ReadAhead[_PullAnswer] | None,
    key: _PullKey,
    etags: set[str],
    delivered: AuditEvent,
) -> _PullAnswer:
    """The answer to ``key`` (on a worker thread), recorded in the audit trail when it
    delivers changes: ``delivered`` completed with the cursor range, the count and the
    scopes of the page's records. An empty page, or one the device already has (304),
    records nothing, so an idle sync stays free of writes. The entry is written before the
    page is sent: a page that cannot be recorded is not delivered (the request fails)."""
    answer = _answer(svc, ahead, key)
    if answer.count and answer.etag not in etags:
        details: dict[str, object] = {
            "since": str(key.cursor),
            "cursor": str(answer.cursor),
            "count": answer.count,
            "has_more": answer.has_more,
        }
        if key.collections:
            details["collections"] = list(key.collections)
        svc.store.audit(replace(delivered, details=details, scopes=answer.scopes))
    return answer


def _answer(svc: Services, ahead: ReadAhead[_PullAnswer] | None, key: _PullKey) -> _PullAnswer:
    """The answer to ``key``: the one read ahead if the feed has not moved since it was
    read, else a fresh one; then, when more follows, the next page is read ahead (only for
    gzip clients: what it holds stays small)."""
    answer = ahead.take(key) if ahead is not None else None
    if ahead is not None and answer is not None:
        current = svc.store.feed_state()
        ahead.note(served=answer.state == current)
        if answer.state != current:
            answer = None
    if answer is None:
        answer = _build(svc, key)
    if ahead is not None and answer.has_more and key.gzip:
        following = key._replace(cursor=answer.cursor)
        ahead.offer(following, functools.partial(_build, svc, following))
    return answer


# From this many changes a page is compressed while it is rendered (responses.gzip_pieces);
# it is then well over GZIP_MIN_SIZE (a change is ~130 bytes of JSON at the very least).
_PIPELINE_FROM_ROWS = 8


def _build(svc: Services, key: _PullKey) -> _PullAnswer:
    """Read, render, hash and compress one page (on a worker thread).

    Compressing here rather than in GZipMiddleware lets the pull pick its own level
    (responses.PULL_GZIP_LEVEL: an initial pull is mostly compression time) and overlap
    it with the rendering; the middleware passes an answer that already has a
    ``Content-Encoding`` through untouched. The page is compressed before its ETag is
    compared: a 304 for a page that is not empty is rare (a client repeating a request),
    and an empty one is small and never compressed.
    """
    page = svc.store.pull(
        key.principal, key.cursor, key.size, list(key.collections) if key.collections else None
    )
    gzipped = key.gzip and len(page.rows) >= _PIPELINE_FROM_ROWS
    if gzipped:
        body = gzip_pieces(page.json_pieces(), PULL_GZIP_LEVEL)
    else:
        body = page.json()
        if key.gzip and len(body) >= GZIP_MIN_SIZE:
            body, gzipped = gzip_bytes(body, PULL_GZIP_LEVEL), True
    return _PullAnswer(
        body,
        pull_etag(page, body),
        gzipped,
        page.cursor,
        page.has_more,
        page.state,
        len(page.rows),
        page.scopes,
    )


def pull_etag(page: Page, body: bytes) -> str:
    """The validator of a pull answer, short because an idle sync's bytes are its cost.

    An empty, final page's body is fixed by its cursor, so its ETag is the cursor itself,
    quoted: a client that applied a page ending at cursor C has never seen the answer to
    ``since=C``, yet can send ``If-None-Match: "C"`` with it and be answered 304 while
    nothing is new (docs/protocol.md, ETag and 304). Any other page: 96 bits of BLAKE2b of
    the body as sent in base64url, 16 characters rather than 24 in hex. As sent: hashing the
    gzip'd body rather than the JSON costs a fifth as much (~0.2 instead of ~0.9 ms for
    1,000 changes), and a strong ETag names one content coding anyway.
    """
    if page.empty and not page.has_more:
        return f'"{page.cursor}"'
    digest = hashlib.blake2b(body, digest_size=12).digest()
    return '"' + base64.urlsafe_b64encode(digest).decode() + '"'


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
        "user": {
            "id": principal.user_id,
            "username": principal.username,
            "role": principal.role,
            "scopes": sorted(principal.scopes),
        },
        "device": device,
    }
