"""``ServerLink``: one HTTP client per replica, kept for the replica's life.

Building an ``httpx.Client`` loads an SSL context and the certificate bundle (even for
``http://``): ~30-60 ms of CPU, which used to be nearly all of an idle sync's cost when
every sync built its own. The link builds the client at first use and hands it to every
transport of the replica — each sync, a continuous loop and its event listener, conflict
reviews, login — so syncs also reuse its open connections. httpx's client may be shared
between threads (its connection pool locks); the link's own state is guarded by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from waystation.client.transport import (
    Credentials,
    HttpTransport,
    TlsVerify,
    trim_default_headers,
)


class ServerLink:
    """The replica's HTTP client and the lock its token refreshes share.

    The client is rebuilt when the server URL, the TLS verification or the timeout it was
    built for changes. A client given up that way may still serve a request in another
    thread, so it is closed only with the link (``close``).
    """

    def __init__(self, *, verify: TlsVerify = True, timeout: float = 30.0) -> None:
        self.verify = verify
        self.timeout = timeout
        # One refresh at a time across every transport of the replica: a refresh token is
        # single-use, and the server ends every session of a device presenting one twice.
        self.refreshing = threading.Lock()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._built_for: tuple[Any, ...] | None = None
        self._retired: list[httpx.Client] = []

    def client(self, server: str, build: Callable[[], httpx.Client]) -> httpx.Client:
        """The shared client for ``server``, built on first use (or after a settings
        change) by ``build``: the replica's overridable ``Replica.http_client``, given per
        call so the link keeps no reference back to the replica. Raises what ``build``
        raises (FileNotFoundError or ``ssl.SSLError`` for a CA file that is missing or not
        PEM certificates)."""
        # Compared by value (an SSLContext by identity; the key keeps it alive).
        wanted = (server, self.verify, self.timeout)
        with self._lock:
            if self._client is None or self._built_for != wanted:
                client = build()
                # Here, under the lock: trimming edits the headers in place, which must not
                # race with a transport of another thread doing the same.
                trim_default_headers(client)
                if self._client is not None:
                    self._retired.append(self._client)
                self._client, self._built_for = client, wanted
            return self._client

    def transport(
        self, server: str, credentials: Credentials, build: Callable[[], httpx.Client]
    ) -> HttpTransport:
        """A transport over the shared client; closing it leaves the client open."""
        return HttpTransport(
            server,
            credentials,
            self.client(server, build),
            owns_http=False,
            refresh_lock=self.refreshing,
        )

    def close(self) -> None:
        """Close the client (and any given up); the next use builds a new one."""
        with self._lock:
            clients = [*self._retired, *([self._client] if self._client else [])]
            self._client, self._built_for, self._retired = None, None, []
        for client in clients:
            client.close()
