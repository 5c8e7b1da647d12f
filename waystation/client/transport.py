"""How the engine talks to a server: the ``Transport`` port and its httpx implementation.

The engine only ever calls these methods, so tests can wrap the real server with an
``httpx.MockTransport`` to inject a lost ack or a 500, and another implementation (a hub
forwarding to its upstream) can stand in.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import httpx

from waystation import __version__
from waystation.client.auth import Tokens, refresh_tokens
from waystation.client.cursor import Cursor
from waystation.client.errors import LoginRequired, ServerUnavailable
from waystation.client.wire import Reply, exchange
from waystation.core.digest import CollectionDigest
from waystation.core.errors import DeviceRevoked, Unauthorized
from waystation.core.hlc import wall_ms


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """The server's per-op results (in request order) and its clock at answer time."""

    results: list[dict[str, Any]]
    server_hlc: str | None
    bytes_sent: int
    bytes_received: int
    sent_at_ms: int
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class PullPage:
    """One page of the change feed; ``not_modified`` when the server answered 304."""

    changes: list[dict[str, Any]]
    cursor: Cursor
    has_more: bool
    etag: str | None = None
    not_modified: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class RemoteDigest:
    """``GET /v1/sync/digest``: the server's digest of each collection as this device may
    see it, and the cursor a caught-up pull holds at that snapshot (core/digest.py)."""

    cursor: Cursor
    collections: dict[str, CollectionDigest]
    bytes_sent: int = 0
    bytes_received: int = 0


class Transport(Protocol):
    """The client's port to a server. Every method may raise:

    - ``Offline``: the server could not be reached (nothing was sent);
    - ``ServerUnavailable``: no usable answer (5xx, timeout, dropped connection);
    - ``LoginRequired``: no usable credentials (never logged in, refresh refused);
    - ``DeviceRevoked``: the device was revoked (``details["wipe"]``);
    - ``PayloadTooLarge``, ``RateLimited``, ``Forbidden``, ``ValidationError`` as the server
      answers; ``pull`` also ``CursorExpired`` (re-pull from the start).
    """

    def push(self, device_id: str, changes: Sequence[Mapping[str, Any]]) -> PushAnswer:
        """Send ops in order; the answer has one result per op."""
        ...

    def pull(self, since: Cursor, *, limit: int, etag: str | None = None) -> PullPage:
        """One page of changes after ``since``; with ``etag``, may answer not modified."""
        ...

    def status(self) -> dict[str, Any]:
        """``GET /v1/sync/status``: server clock, collections (priority, counters), device."""
        ...

    def healthz(self) -> bool:
        """A cheap connectivity probe; True when the server answers. Never raises."""
        ...

    def digest(self, collections: Sequence[str] | None = None) -> RemoteDigest:
        """The server's integrity digest of ``collections`` (all when None); raises
        ``NotFound`` from a server without the endpoint."""
        ...

    def wait_for_changes(self, since: Cursor, *, wait: float = 25.0) -> bool:
        """Long-poll ``GET /v1/sync/events``: True as soon as the server has changes after
        ``since`` in this device's scopes, False after ``wait`` seconds without. Never
        refreshes the token (the sync loop does that); raises like ``pull``, and
        ``NotFound`` from a server without the endpoint."""
        ...

    def close(self) -> None: ...


class Credentials(Protocol):
    """Where the transport finds and keeps the device's tokens (the replica's meta)."""

    @property
    def device_id(self) -> str: ...

    def access_token(self) -> str | None: ...

    def refresh_token(self) -> str | None: ...

    def save_tokens(self, tokens: Tokens) -> None:
        """Persist rotated tokens at once (the old refresh token stops working)."""
        ...


USER_AGENT = f"waystation/{__version__}"

# How the client checks the server's TLS certificate: True (the system's CAs, or the file
# named by SSL_CERT_FILE), a CA bundle (PEM) that signed the server's certificate (a
# clinic's own CA), or a ready ``ssl.SSLContext``. Never False: a client that skips the
# check hands its tokens to whoever answers.
TlsVerify: TypeAlias = "bool | str | Path | ssl.SSLContext"


def http_client(timeout: float, verify: TlsVerify = True) -> httpx.Client:
    """An httpx client for a Waystation server. Raises FileNotFoundError or
    ``ssl.SSLError`` for a CA file that is missing or not PEM certificates."""
    if isinstance(verify, str | Path):
        verify = ssl.create_default_context(cafile=str(verify))
    return httpx.Client(timeout=timeout, verify=verify)


def trim_default_headers(http: httpx.Client) -> None:
    """Replace httpx's default request headers with the few a Waystation server needs.

    An idle sync is one request answered 304; on a 2G link its bytes are the cost, and
    httpx's defaults are ~100 of them on every request: ``Connection: keep-alive`` says
    what HTTP/1.1 already means, ``Accept: */*`` adds nothing (the protocol is JSON, and
    requests say so where it matters), the server compresses with gzip only, and a short
    ``User-Agent`` still tells the server's operators which SDK is calling. Only headers
    still at httpx's defaults are touched, so a caller's own choices stand.
    """
    headers = http.headers
    if headers.get("user-agent", "").startswith("python-httpx/"):
        headers["User-Agent"] = USER_AGENT
    if headers.get("accept-encoding", "").startswith("gzip, deflate"):
        headers["Accept-Encoding"] = "gzip"
    for name, default in (("accept", "*/*"), ("connection", "keep-alive")):
        if headers.get(name) == default:
            del headers[name]


@dataclass
class HttpTransport:
    """Protocol v1 over HTTP with httpx. Refreshes an expired access token once per request.

    Pass ``http`` to share a client or to wrap the real server in fault injection; the
    transport trims that client's default headers (``trim_default_headers``). ``close``
    closes the client unless ``owns_http`` is False (a replica's shared client, link.py).
    Transports sharing credentials should share ``refresh_lock`` too (``_refresh``).
    Thread-safe when its client is (httpx's is).
    """

    server: str
    credentials: Credentials
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))
    probe_timeout: float = 5.0
    owns_http: bool = True
    refresh_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        trim_default_headers(self.http)

    def push(self, device_id: str, changes: Sequence[Mapping[str, Any]]) -> PushAnswer:
        sent_at = wall_ms()
        reply = self.request(
            "POST", "/v1/sync/push", body={"device_id": device_id, "changes": list(changes)}
        )
        received_at = wall_ms()
        body = _object(reply)
        return PushAnswer(
            results=list(body.get("results") or []),
            server_hlc=body.get("server_hlc"),
            bytes_sent=reply.bytes_sent,
            bytes_received=reply.bytes_received,
            sent_at_ms=sent_at,
            received_at_ms=received_at,
        )

    def pull(self, since: Cursor, *, limit: int, etag: str | None = None) -> PullPage:
        # Without the ETag of an earlier answer to this very request (the usual case after a
        # sync that pulled something: the cursor moved), offer the one an empty page at
        # ``since`` has, its cursor quoted: then an idle sync is a 304 the first time too.
        if etag is None and not since.is_start:
            etag = f'"{since}"'
        headers = {"If-None-Match": etag} if etag else None
        reply = self.request(
            "GET",
            "/v1/sync/pull",
            params={"since": str(since), "limit": str(limit)},
            headers=headers,
        )
        if reply.status == 304:
            return PullPage([], since, False, etag, True, reply.bytes_sent, reply.bytes_received)
        body = _object(reply)
        return PullPage(
            changes=list(body.get("changes") or []),
            cursor=Cursor(str(body.get("cursor") or since)),
            has_more=bool(body.get("has_more")),
            etag=reply.headers.get("ETag"),
            bytes_sent=reply.bytes_sent,
            bytes_received=reply.bytes_received,
        )

    def status(self) -> dict[str, Any]:
        return _object(self.request("GET", "/v1/sync/status"))

    def digest(self, collections: Sequence[str] | None = None) -> RemoteDigest:
        params = {"collections": ",".join(collections)} if collections else None
        reply = self.request("GET", "/v1/sync/digest", params=params)
        body = _object(reply)
        try:
            found = {
                str(name): CollectionDigest(int(entry["count"]), str(entry["digest"]))
                for name, entry in dict(body["collections"]).items()
            }
            cursor = Cursor(str(body["cursor"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"the server's digest is malformed ({exc!r})") from exc
        return RemoteDigest(cursor, found, reply.bytes_sent, reply.bytes_received)

    def healthz(self) -> bool:
        try:
            response = self.http.get(f"{self.server}/healthz", timeout=self.probe_timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_for_changes(self, since: Cursor, *, wait: float = 25.0) -> bool:
        token = self.credentials.access_token()
        if not token:
            raise LoginRequired("no access token yet: the sync loop logs in first")
        reply = exchange(
            self.http,
            "GET",
            f"{self.server}/v1/sync/events",
            params={"since": str(since), "wait": f"{wait:g}"},
            token=token,
            timeout=wait + 15.0,
        )
        return bool(_object(reply).get("changed"))

    def close(self) -> None:
        if self.owns_http:
            self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request to ``path`` with the device's access token, refreshed (once) when
        missing, expired or refused: for the calls outside the sync port, such as reviewing
        conflicts (conflicts.py). Raises like the port's methods (``LoginRequired``,
        ``DeviceRevoked``, ``Offline``, ``ServerUnavailable``) and the server's own refusal
        (``Forbidden``, ``NotFound``, ``ValidationError``, ...; wire.py)."""
        token = self.credentials.access_token() or self._refresh()
        url = f"{self.server}{path}"
        try:
            return exchange(
                self.http, method, url, body=body, params=params, headers=headers, token=token
            )
        except DeviceRevoked:
            raise
        except Unauthorized:
            token = self._refresh()
        try:
            return exchange(
                self.http, method, url, body=body, params=params, headers=headers, token=token
            )
        except DeviceRevoked:
            raise
        except Unauthorized as exc:
            raise LoginRequired(
                f"the server refused a freshly refreshed token ({exc.message}); log in again "
                "with `waystation login --replica FILE --server URL --username NAME`"
            ) from exc

    def _refresh(self) -> str:
        """Trade the refresh token for new tokens, one thread at a time: a refresh token
        is single-use, and the server ends every session of a device that presents one
        twice. A thread that waited finds the token another just stored."""
        presented = self.credentials.refresh_token()
        with self.refresh_lock:
            refresh = self.credentials.refresh_token()
            if refresh and refresh != presented:
                token = self.credentials.access_token()
                if token:
                    return token
            if not refresh:
                raise LoginRequired(
                    "this replica is not logged in (or its login expired); run "
                    "`waystation login --replica FILE --server URL --username NAME`"
                )
            tokens = refresh_tokens(self.http, self.server, refresh, self.credentials.device_id)
            self.credentials.save_tokens(tokens)
            return tokens.access_token


def _object(reply: Reply) -> dict[str, Any]:
    """The answer's JSON object; anything else is a server defect, retried like a 5xx."""
    if not isinstance(reply.body, dict):
        raise ServerUnavailable("the server answered with something other than a JSON object")
    return reply.body
