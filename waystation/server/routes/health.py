"""Liveness and readiness probes (no auth): load balancers and the client's connectivity
check call them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.server.context import services
from waystation.server.errors import error_response
from waystation.server.responses import OrjsonResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    try:
        found = await run_in_threadpool(services(request).store.readiness)
    except Exception as exc:  # a readiness probe reports, it does not raise
        return error_response(503, "NOT_READY", f"database unreachable: {type(exc).__name__}")
    if not found.ready:
        return error_response(
            503,
            "NOT_READY",
            f"database at revision {found.revision}, expected {found.head}: run the migrations",
        )
    return OrjsonResponse({"status": "ready", "revision": found.revision})
