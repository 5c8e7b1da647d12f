"""Fault injection in front of a real server: an httpx transport that forwards each request
to the live ``waystation serve`` and lets a test break the exchange (a lost ack, a 500)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from waystation.client import HttpTransport, Replica

# Given the request and the real server's response (None before forwarding), a fault
# returns a response to use instead, raises an httpx error, or returns None to pass.
Fault = Callable[[httpx.Request, httpx.Response | None], httpx.Response | None]


class Forwarder:
    """``before`` runs ahead of the real server, ``after`` once it has answered."""

    def __init__(self) -> None:
        self.real = httpx.Client(timeout=30)
        self.before: Fault | None = None
        self.after: Fault | None = None
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.before is not None and (early := self.before(request, None)) is not None:
            return early
        real = self.real.send(
            httpx.Request(
                request.method, request.url, headers=request.headers, content=request.content
            )
        )
        if self.after is not None and (late := self.after(request, real)) is not None:
            return late
        headers = {
            k: v
            for k, v in real.headers.items()
            if k.lower() not in ("content-encoding", "content-length")
        }
        return httpx.Response(real.status_code, headers=headers, content=real.content)

    def transport_for(self, replica: Replica) -> HttpTransport:
        assert replica.server_url is not None
        client = httpx.Client(transport=httpx.MockTransport(self))
        return HttpTransport(replica.server_url, replica.session, client)

    def close(self) -> None:
        self.real.close()


def is_push(request: httpx.Request) -> bool:
    return request.url.path == "/v1/sync/push"


def is_pull(request: httpx.Request) -> bool:
    return request.url.path == "/v1/sync/pull"
