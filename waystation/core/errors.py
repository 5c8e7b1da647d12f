"""Every error Waystation names, with its protocol code and HTTP status.

The hierarchy::

    WaystationError                 code            status
    ├── ValidationError             VALIDATION_ERROR 400
    ├── Unauthorized                UNAUTHORIZED     401
    │   └── DeviceRevoked           DEVICE_REVOKED   401
    ├── Forbidden                   FORBIDDEN        403
    ├── NotFound                    NOT_FOUND        404
    ├── RequestTimeout              REQUEST_TIMEOUT  408
    ├── StaleUpdate                 STALE_UPDATE     409
    ├── AlreadyResolved             ALREADY_RESOLVED 409
    ├── UniqueViolation             UNIQUE_VIOLATION 409
    ├── CursorExpired               CURSOR_EXPIRED   410
    ├── PayloadTooLarge             PAYLOAD_TOO_LARGE 413
    └── RateLimited                 RATE_LIMITED     429

The server turns any of them into ``{"error": {"code", "message", "details"}}``; the client
turns such a body back into the same class, so both sides speak one vocabulary. Per-op
verdicts inside a push use the same codes (plus ``UNIQUE_VIOLATION`` and ``MANUAL_REVIEW``,
which are outcomes rather than exceptions).
"""

from __future__ import annotations

from typing import Any, ClassVar


class WaystationError(Exception):
    """Base of every error with a protocol code; ``details`` is JSON-serialisable."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(WaystationError):
    """Malformed input; ``details["field"]`` names the offending path when there is one."""

    code = "VALIDATION_ERROR"
    status = 400


class Unauthorized(WaystationError):
    code = "UNAUTHORIZED"
    status = 401


class DeviceRevoked(Unauthorized):
    """The device's registration was revoked; ``details["wipe"]`` says whether to wipe."""

    code = "DEVICE_REVOKED"


class Forbidden(WaystationError):
    code = "FORBIDDEN"
    status = 403


class NotFound(WaystationError):
    code = "NOT_FOUND"
    status = 404


class RequestTimeout(WaystationError):
    """The request's body stalled: no bytes for longer than the server's body timeout."""

    code = "REQUEST_TIMEOUT"
    status = 408


class StaleUpdate(WaystationError):
    code = "STALE_UPDATE"
    status = 409


class AlreadyResolved(WaystationError):
    """A conflict resolved before (``details``: its resolution, who and when)."""

    code = "ALREADY_RESOLVED"
    status = 409


class UniqueViolation(WaystationError):
    """A conflict's resolution would itself take a unique key another live record holds
    (``details["existing_id"]``); push answers carry the same code per op instead."""

    code = "UNIQUE_VIOLATION"
    status = 409


class CursorExpired(WaystationError):
    code = "CURSOR_EXPIRED"
    status = 410


class PayloadTooLarge(WaystationError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimited(WaystationError):
    code = "RATE_LIMITED"
    status = 429


ERRORS_BY_CODE: dict[str, type[WaystationError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        Unauthorized,
        DeviceRevoked,
        Forbidden,
        NotFound,
        RequestTimeout,
        StaleUpdate,
        AlreadyResolved,
        UniqueViolation,
        CursorExpired,
        PayloadTooLarge,
        RateLimited,
    )
}


def error_from_body(body: Any, status: int) -> WaystationError:
    """Rebuild the error a server sent; an unknown shape becomes a plain WaystationError."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return WaystationError(f"server answered {status} without an error body")
    cls = ERRORS_BY_CODE.get(str(err.get("code")), WaystationError)
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    return cls(str(err.get("message", "")), details)
