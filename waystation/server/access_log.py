"""The access log of ``waystation serve --access-log FILE``: one JSON line per request that
reached the app, written when its answer ends (or the client went away).

Off by default. Each line: ``ts`` (UTC, ISO 8601), ``pid`` (the serving process: several
``--workers`` or servers may share the file), ``client``, ``method``, ``path``, ``status``
(0 when no answer was started), ``bytes`` (answer body, as sent) and ``ms``. The query
string and the bodies are never written: cursors, search terms and credentials stay out of
the log. Lines are appended with one ``write`` each on a descriptor opened with
``O_APPEND``, so processes sharing the file never interleave within a line, and a line is
in the file (the kernel's page cache) as soon as it is written: a SIGKILL loses none.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waystation.server.settings import Settings


class AccessLog:
    """ASGI middleware appending one line per HTTP request to an open log file."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        # 0600: paths carry record ids; the log is the server operator's alone.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = {"status": 0, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            line = orjson.dumps(
                {
                    "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    "pid": os.getpid(),
                    "client": client[0] if client else None,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": answer["status"],
                    "bytes": answer["bytes"],
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
            os.write(self._fd, line + b"\n")


def install_access_log(app: FastAPI, settings: Settings) -> None:
    """Log ``app``'s requests when ``settings.access_log_path`` names a file; outermost, so
    every request counts, and ``bytes`` is what went on the wire (after gzip). The file is
    opened when the app starts (raises OSError then when it cannot be)."""
    if settings.access_log_path is not None:
        app.add_middleware(AccessLog, path=settings.access_log_path)


def check_access_log_path(path: str) -> None:
    """Open (create) the log file once, so a bad path fails before the server starts;
    raises OSError."""
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
