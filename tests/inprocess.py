"""The in-process test tier: the real server app, reached without a socket.

``InProcessServer`` builds the app as ``waystation serve`` does (``server/app.py``'s
``create_app`` over a store on a real SQLite file, lifespan running) and runs it on one
event loop of its own (an anyio blocking portal: a thread). Clients reach it through
``httpx.ASGITransport``; the SDK is synchronous, so ``AppTransport`` hands each request of
a plain ``httpx.Client`` to that loop. Everything a user runs is real but the TCP socket and
the separate process: tests of client against server run here, while crash, restart,
kill -9 and end-to-end tests keep a real ``waystation serve`` (tests/support.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from tests.support import hash_test_password
from waystation.client import Replica
from waystation.core.schema import health_schema
from waystation.server import Settings
from waystation.server.app import create_app
from waystation.store import SqlStore, open_store


class AppTransport(httpx.BaseTransport):
    """``httpx.ASGITransport`` for a synchronous ``httpx.Client``: each request runs on the
    app's event loop (``portal``) and its whole answer is read there."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._portal.call(self._send, request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        answer = await self._asgi.handle_async_request(request)
        # the bytes as sent (gzip stays gzip): the client decodes them, as off the wire
        body = b"".join([chunk async for chunk in answer.aiter_raw()])
        return httpx.Response(
            answer.status_code,
            headers=answer.headers,
            stream=httpx.ByteStream(body),
            extensions=answer.extensions,
        )


class InProcessServer:
    """The server app over a SQLite file in ``workdir``, in this process. ``url`` is a
    loopback URL the SDK accepts over plain HTTP; nothing listens there (every client comes
    from ``http()``). ``close()`` ends the app's lifespan, its loop and the store."""

    url = "http://127.0.0.1:8000"

    def __init__(self, workdir: Path, settings: Settings | None = None) -> None:
        self.db_url = f"sqlite:///{workdir / 'server.db'}"
        self.store: SqlStore = open_store(self.db_url, health_schema(), migrate=True)
        self.app = create_app(self.store, settings or Settings())
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(start_blocking_portal())
        self._stack.enter_context(
            self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )

    def http(self) -> httpx.Client:
        """A new client of the app (closing it leaves the app running)."""
        return httpx.Client(transport=AppTransport(self.app, self.portal), timeout=30)

    @property
    def replica_class(self) -> type[Replica]:
        """``Replica`` whose HTTP goes to this app: it overrides ``Replica.http_client``,
        the one method through which the SDK makes its clients (login and transport)."""
        server = self

        class InProcessReplica(Replica):
            def http_client(self) -> httpx.Client:
                return server.http()

        return InProcessReplica

    def add_user(
        self, username: str, role: str, scopes: Sequence[str] = (), password: str = "pw"
    ) -> str:
        """Create a user straight in the database (as ``waystation users add`` does)."""
        return self.store.add_user(username, hash_test_password(password), role, list(scopes)).id

    def close(self) -> None:
        self._stack.close()
        self.store.close()
