"""Close connections that hold the server without sending a request (slowloris).

uvicorn closes idle keep-alive connections, but a connection that sends its request
headers a byte at a time, or never finishes them, holds a slot forever: five such
connections held a server for 150 s in the security review (hole 7). This protocol is
uvicorn's httptools protocol with one more timer: armed when a connection opens and after
each response, cancelled when a request's headers are complete; when it fires the
connection is closed. A slow *body* is the route's concern: ``server/body.py`` gives each
chunk a deadline of its own.

The timeout reaches every ``--workers`` process through the environment (uvicorn hands its
workers the protocol class by reference, not its settings), set by ``waystation serve``.

A request the parser refuses (a malformed header, say) is answered here too, in the
protocol's error shape rather than uvicorn's plain text: clients branch on ``error.code``
whatever went wrong.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEADER_TIMEOUT_ENV = "WAYSTATION_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT_S = 15.0


def header_timeout() -> float:
    """Seconds a connection has to complete a request's headers (the environment's, else
    the default)."""
    return float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT_S)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers do not
    arrive within :func:`header_timeout` seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout()
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its headers are already complete
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refuses, as a JSON error body."""
        body = orjson.dumps(
            {
                "error": {
                    "code": "VALIDATION_ERROR",
                    "message": f"invalid HTTP request: {msg}",
                    "details": {},
                }
            }
        )
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
