"""Every error leaves the server in the protocol's shape; no stack trace ever does.

``{"error": {"code", "message", "details"}}`` for our own errors, for FastAPI's request
validation (400 VALIDATION_ERROR naming the field), for unknown routes and methods, and —
as a defect, logged with its trace on the server — for anything unexpected (500 INTERNAL).
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from waystation.core.errors import WaystationError
from waystation.server.responses import OrjsonResponse

log = logging.getLogger("waystation.server")

_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    413: "PAYLOAD_TOO_LARGE",
}
# Where FastAPI found a bad parameter: ``details.field`` names the parameter alone.
_LOCATIONS = ("query", "path", "body", "header")


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return OrjsonResponse(body, status_code=status, headers=headers)


def _headers_for(exc: WaystationError) -> dict[str, str] | None:
    if exc.status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if exc.status == 408:
        return {"Connection": "close"}
    if exc.status == 429:
        return {"Retry-After": str(max(1, math.ceil(exc.details.get("retry_after", 1))))}
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WaystationError)
    async def _ours(_request: Request, exc: WaystationError) -> Response:
        headers = _headers_for(exc)
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"] if p not in _LOCATIONS)
        return error_response(400, "VALIDATION_ERROR", f"{path}: {first['msg']}", {"field": path})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = (
            "no such endpoint; see docs/protocol.md" if exc.status_code == 404 else str(exc.detail)
        )
        return error_response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _defect(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "INTERNAL",
            "the server failed on this request; it was "
            "logged. Retry later, and report it if it persists.",
        )
