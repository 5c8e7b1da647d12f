"""``GET /v1/sync/events``: tell a device at once that changes exist in its scopes.

Two forms of one contract, chosen by the ``Accept`` header:

- ``text/event-stream`` (server-sent events): an ``event: changes`` whenever changes the
  device may pull commit (on any server process sharing the database), with ``id:`` a
  cursor-shaped position so a reconnecting ``EventSource`` resumes with ``Last-Event-ID``;
  a ``: keepalive`` comment every 15 s; the server ends the stream after 5 minutes (the
  client reconnects, and its token is checked again).
- anything else (long poll): ``{"changed": true, "seq": "..."}`` as soon as there are
  changes after ``since``, or ``{"changed": false, "seq": null}`` after ``wait`` seconds
  (default 25, at most 60).

``since`` is the device's pull cursor (same ``collections`` filter as its pulls): changes
that committed after it and before the request are reported at once. ``seq`` is a hint
(the newest change the server knows of), never a cursor to pull from: pull from your own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from waystation.core.access import Principal
from waystation.core.errors import ValidationError
from waystation.server.auth import require_device
from waystation.server.broadcast import Broadcaster, Subscription
from waystation.server.context import caller, services
from waystation.server.responses import OrjsonResponse
from waystation.store.port import Cursor, Store

log = logging.getLogger("waystation.events")
router = APIRouter(prefix="/v1/sync")

HEARTBEAT_S = 15.0
MAX_STREAM_S = 300.0
DEFAULT_WAIT_S = 25.0  # under the 30 s idle timeout of most proxies and load balancers
MAX_WAIT_S = 60.0


@router.get("/events")
async def events(
    request: Request,
    since: Annotated[str | None, Query(max_length=40)] = None,
    collections: Annotated[str | None, Query(max_length=2000)] = None,
    wait: Annotated[float | None, Query(gt=0, le=MAX_WAIT_S)] = None,
) -> Response:
    svc = services(request)
    principal = await caller(request)
    require_device(principal)
    wanted = _collections(svc.store, collections)
    cursor = Cursor.parse(since or request.headers.get("last-event-id"), wanted)
    broadcaster: Broadcaster = request.app.state.broadcaster
    # Subscribe before looking: a change committed in between is then heard, not lost.
    subscription = broadcaster.subscribe(
        None if principal.is_admin else principal.readable_scopes(),
        frozenset(wanted) if wanted else None,
    )
    try:
        # refuses cursors never issued (400) or expired (410) as a pull would
        newest = await run_in_threadpool(
            svc.store.newest_change, principal, cursor, wanted, check=True
        )
    except BaseException:
        subscription.close()
        raise
    if "text/event-stream" in request.headers.get("accept", ""):
        stream = _stream(subscription, svc.store, principal, cursor, wanted, newest)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        seq = await _long_poll(
            subscription, svc.store, principal, cursor, wanted, newest, wait or DEFAULT_WAIT_S
        )
    finally:
        subscription.close()
    return OrjsonResponse(
        {"changed": seq > cursor.seq, "seq": str(seq) if seq > cursor.seq else None}
    )


def _collections(store: Store, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    unknown = [n for n in names if store.schema.get(n) is None]
    if unknown:
        raise ValidationError(f"unknown collection {unknown[0]!r}", {"field": "collections"})
    return names or None


async def _heard_seq(
    subscription: Subscription,
    store: Store,
    principal: Principal,
    cursor: Cursor,
    wanted: Sequence[str] | None,
    timeout: float,
) -> int | None:
    """The newest seq learnt within ``timeout`` (None: nothing heard). A notice that does
    not say whose changes it carries costs one look at the database."""
    heard = await subscription.next(timeout)
    if heard is None:
        return None
    seq = heard.seq
    if heard.recheck:
        seq = max(
            seq,
            await run_in_threadpool(store.newest_change, principal, cursor, wanted, check=False),
        )
    return seq


async def _long_poll(
    subscription: Subscription,
    store: Store,
    principal: Principal,
    cursor: Cursor,
    wanted: Sequence[str] | None,
    newest: int,
    wait: float,
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while newest <= cursor.seq and (left := deadline - loop.time()) > 0:
        heard = await _heard_seq(subscription, store, principal, cursor, wanted, left)
        if heard is None:
            break
        newest = max(newest, heard)
    return newest


def _event(seq: int, tag: str) -> bytes:
    position = str(Cursor(seq, tag))
    data = orjson.dumps({"seq": str(seq)}).decode()
    return f"event: changes\nid: {position}\ndata: {data}\n\n".encode()


async def _stream(
    subscription: Subscription,
    store: Store,
    principal: Principal,
    cursor: Cursor,
    wanted: Sequence[str] | None,
    newest: int,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_S
    told = cursor.seq
    try:
        yield b"retry: 3000\n\n"
        if newest > told:
            yield _event(newest, cursor.filter_tag)
            told = newest
        while (left := deadline - loop.time()) > 0:
            position = Cursor(told, cursor.filter_tag)
            try:
                seq = await _heard_seq(
                    subscription, store, principal, position, wanted, min(HEARTBEAT_S, left)
                )
            except Exception:  # the database is unreachable: end; the client reconnects
                log.warning("event stream ended: re-check failed", exc_info=True)
                return
            if seq is None:
                yield b": keepalive\n\n"
            elif seq > told:
                yield _event(seq, cursor.filter_tag)
                told = seq
    finally:
        subscription.close()
