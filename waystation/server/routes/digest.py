"""``GET /v1/sync/digest``: per collection, a count and a digest of the records the caller
may see, so a device can prove it holds what the server holds (core/digest.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.errors import ValidationError
from waystation.core.schema import Schema
from waystation.server.auth import require_device
from waystation.server.context import caller, services
from waystation.server.responses import OrjsonResponse

router = APIRouter(prefix="/v1/sync")


@router.get("/digest")
async def digest(
    request: Request,
    collections: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    svc = services(request)
    principal = await caller(request)
    require_device(principal)  # as for a pull: it describes what a pull delivers
    wanted = named_collections(svc.store.schema, collections)
    found = await run_in_threadpool(svc.store.digest, principal, wanted)
    return OrjsonResponse(found.to_wire())


def named_collections(schema: Schema, text: str | None) -> list[str] | None:
    """The collections of a comma-separated ``collections`` filter, as a pull reads it
    (None: all). Raises ValidationError naming the first unknown one."""
    if not text:
        return None
    names = sorted({name.strip() for name in text.split(",") if name.strip()})
    unknown = [name for name in names if schema.get(name) is None]
    if unknown:
        raise ValidationError(f"unknown collection {unknown[0]!r}", {"field": "collections"})
    return names or None
