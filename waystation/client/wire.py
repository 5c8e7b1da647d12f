"""One HTTP exchange with a Waystation server, with protocol errors turned into exceptions.

The single place where httpx's failures are classified (``Offline`` when the request never
left, ``ServerUnavailable`` when it may have arrived but no usable answer came back) and
where an error body becomes the ``waystation.core.errors`` class it names.
"""

from __future__ import annotations

import gzip
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from waystation.client.errors import Offline, ServerUnavailable
from waystation.core.errors import WaystationError, error_from_body

GZIP_MIN_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful (2xx or 304) answer, with the bytes each way as they travelled."""

    status: int
    body: Any
    headers: httpx.Headers
    bytes_sent: int
    bytes_received: int


def exchange(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float | None = None,
) -> Reply:
    """Send one request; returns the answer or raises.

    Raises ``Offline``, ``ServerUnavailable`` (5xx, timeout, dropped connection) or the
    ``WaystationError`` subclass the server's error body names (``Unauthorized``,
    ``DeviceRevoked``, ``CursorExpired``, ``PayloadTooLarge``, ``RateLimited``, ...).
    Request bodies above ``GZIP_MIN_BYTES`` are sent gzip-compressed.
    """
    send_headers = {"Accept": "application/json", **(headers or {})}
    if token is not None:
        send_headers["Authorization"] = f"Bearer {token}"
    content: bytes | None = None
    if body is not None:
        content = orjson.dumps(body)
        send_headers["Content-Type"] = "application/json"
        if len(content) >= GZIP_MIN_BYTES:
            content = gzip.compress(content, compresslevel=6)
            send_headers["Content-Encoding"] = "gzip"
    request = http.build_request(
        method,
        url,
        content=content,
        params=params,
        headers=send_headers,
        timeout=timeout if timeout is not None else http.timeout,
    )
    try:
        response = http.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Offline(
            f"cannot reach {request.url.host}:{request.url.port}: {exc}{_tls_hint(exc)}"
        ) from exc
    except httpx.TransportError as exc:
        hint = ""
        # A TLS server drops a plain-HTTP request unanswered: a clean close, or a reset
        # when it closes before reading all that was sent (which one depends on timing).
        if request.url.scheme == "http" and isinstance(
            exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
        ):
            hint = "; if the server serves HTTPS, use its https:// URL"
        raise ServerUnavailable(
            f"no answer from the server ({type(exc).__name__}: {exc}){hint}"
        ) from exc
    sent = len(content or b"")
    received = response.num_bytes_downloaded
    if response.status_code >= 500:
        raise ServerUnavailable(
            f"the server failed with HTTP {response.status_code}",
            {"status": response.status_code, "body": _safe_json(response)},
        )
    if response.status_code >= 400:
        raise error_from_body(_safe_json(response), response.status_code)
    parsed = _safe_json(response) if response.status_code != 304 else None
    if response.status_code != 304 and parsed is None:
        raise WaystationError(
            f"the server at {request.url} answered {response.status_code} without JSON; "
            "is this a Waystation server?"
        )
    return Reply(response.status_code, parsed, response.headers, sent, received)


def _tls_hint(exc: BaseException) -> str:
    """What to do when the server's certificate was not trusted (nothing was sent)."""
    cause: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore's error, which wraps ssl's
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                "; the server's TLS certificate is not trusted: trust the CA that "
                "signed it (verify= in the SDK, --ca-cert on the command line)"
            )
        cause = cause.__cause__ or cause.__context__
    return ""


def _safe_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
