"""The bare-endpoint ceiling: an ASGI app that only reads, gunzips and parses a push body.

    python -m uvicorn bench.bare_app:app --port N

No auth, no validation, no database: what HTTP + JSON alone cost on this machine.
"""

from __future__ import annotations

import zlib

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def push(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        body = zlib.decompress(body, wbits=31)
    changes = orjson.loads(body)["changes"]
    # the push answer's shape (no results computed), so the driver records no error
    return Response(
        orjson.dumps({"received": len(changes), "results": []}), media_type="application/json"
    )


async def healthz(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(routes=[Route("/v1/sync/push", push, methods=["POST"]), Route("/healthz", healthz)])
