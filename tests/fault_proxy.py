"""A fault-injecting HTTP proxy on loopback, for tests and the soak (``bench/soak.py``).

It stands between clients and a real ``waystation serve`` and breaks exchanges the way a
rural link does, chosen per request by a seeded random generator, so a run replays:

- ``drop``: the connection is closed before the request is forwarded (the server never
  sees it);
- ``bad_gateway``: a ``502 Bad Gateway`` is answered without forwarding (a proxy whose
  upstream hiccupped);
- ``lost_answer``: the request is forwarded, the server answers, and the connection is
  closed before a byte of the answer reaches the client (a lost ack: the op is in);
- ``cut``: the answer is cut after a random part of it (a link dropping mid-body);
- ``duplicate``: the request reaches the server twice (a retransmission), the client gets
  the answer to the first;
- ``delay``: the request waits before it is forwarded.

HTTP/1.1 framing is read just enough to find where each request and answer ends
(``Content-Length`` or chunked; a client here never sends chunked bodies), so keep-alive
connections carry many requests, each with its own fault. Loopback only, and bounded: at
most ``max_connections`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
FAULTS = ("drop", "bad_gateway", "lost_answer", "cut", "duplicate", "delay")
_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n"
    b"content-length: 11\r\nconnection: close\r\n\r\nbad gateway"
)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """The chance of each fault per request (the rest pass untouched)."""

    drop: float = 0.0
    bad_gateway: float = 0.0
    lost_answer: float = 0.0
    cut: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    max_delay_s: float = 0.5

    def pick(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for name in FAULTS:
            chance = getattr(self, name)
            if roll < chance:
                return name
            roll -= chance
        return None


class _Closed(Exception):
    """The peer closed the connection where a message was expected."""


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise _Closed from exc
    except asyncio.LimitOverrunError as exc:
        raise _Closed from exc


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await _read_head(reader)
    length = int(_header(head, b"content-length") or 0)
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise _Closed from exc
    return head + body


async def _relay_answer(
    upstream: asyncio.StreamReader,
    method: bytes,
    send: asyncio.StreamWriter | None,
    cut_at: float | None,
) -> bool:
    """Copy one answer from ``upstream`` to ``send`` (None: read and discard it). With
    ``cut_at`` (a fraction), stop that far into the answer: always before its end.
    Returns whether the connection may carry another request."""
    sent = 0
    cut_after: int | None = None

    async def out(data: bytes) -> bool:
        nonlocal sent
        if send is None:
            return True
        if cut_after is not None and sent + len(data) > cut_after:
            send.write(data[: max(0, cut_after - sent)])
            await send.drain()
            return False
        send.write(data)
        sent += len(data)
        await send.drain()
        return True

    head = await _read_head(upstream)
    if cut_at is not None:
        length_text = _header(head, b"content-length")
        total = len(head) + (int(length_text) if length_text is not None else 4096)
        cut_after = min(int(cut_at * total), total - 1)
    if not await out(head):
        return False
    status = int(head.split(b" ", 2)[1])
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        return True
    if (_header(head, b"transfer-encoding") or b"").lower() == b"chunked":
        while True:
            size_line = await upstream.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await upstream.readexactly(size + 2)
            if not await out(size_line + chunk):
                return False
            if size == 0:
                return True
    length = _header(head, b"content-length")
    if length is not None:
        remaining = int(length)
        while remaining:
            data = await upstream.read(min(remaining, 65536))
            if not data:
                raise _Closed
            remaining -= len(data)
            if not await out(data):
                return False
        return True
    while data := await upstream.read(65536):  # to the end of the connection
        if not await out(data):
            return False
    return False


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, waiting a bounded while for it to go: on Python 3.11 a
    connection reset mid-close can leave ``wait_closed`` pending for ever, and the
    handler (holding a connection slot) would then be lost to the garbage collector."""
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


class FaultProxy:
    """``FaultProxy(upstream_port, rates, seed=1)``, then ``start()``; clients use ``url``.

    ``upstream_port`` may be several ports (servers sharing one database): each client
    connection goes to the next, in turn. ``faulty_paths`` (path prefixes, e.g.
    ``["/v1/"]``) limits the faults to those requests: a browser's page and scripts, which
    a real app keeps in its service worker's cache, then load whole. ``counts`` tells what
    happened: ``requests`` (``healthz`` of them probes), one entry per fault injected, and
    ``spared``: faults drawn for a request outside ``faulty_paths`` and not injected."""

    def __init__(
        self,
        upstream_port: int | Sequence[int],
        rates: FaultRates,
        *,
        seed: int = 1,
        port: int = 0,
        max_connections: int = 256,
        faulty_paths: Sequence[str] | None = None,
    ) -> None:
        self.upstream_ports = (
            [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
        )
        self._turn = itertools.count()
        self.rates = rates
        self.rng = random.Random(seed)
        self.port = port
        self.max_connections = max_connections
        self.counts: Counter[str] = Counter()
        self.enabled = True
        self.faulty_paths = (
            None if faulty_paths is None else tuple(p.encode() for p in faulty_paths)
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fault-proxy"
        )
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._handlers: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        started.result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    def _pick(self, request: bytes) -> tuple[str | None, float, float]:
        """The fault for the next request, and the random numbers it needs (drawn under a
        lock, in request order, so a run with one client replays exactly)."""
        with self._lock:
            self.counts["requests"] += 1
            path = b"".join(request.split(b" ", 2)[1:2])
            if path == b"/healthz":
                self.counts["healthz"] += 1  # probes, told apart from the sync requests
            fault = self.rates.pick(self.rng) if self.enabled else None
            if fault is not None and not self._faulty(path):
                fault = None  # drawn all the same: the other requests' faults stay put
                self.counts["spared"] += 1
            if fault is not None:
                self.counts[fault] += 1
            return fault, self.rng.random(), self.rng.random()

    def _faulty(self, path: bytes) -> bool:
        return self.faulty_paths is None or path.startswith(self.faulty_paths)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # asyncio keeps only a weak reference to a handler's task
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        async with self._slots:
            upstream_port = self.upstream_ports[next(self._turn) % len(self.upstream_ports)]
            try:
                while True:
                    request = await _read_request(client_r)
                    fault, a, b = self._pick(request)
                    if fault == "drop":
                        return
                    if fault == "bad_gateway":
                        client_w.write(_BAD_GATEWAY)
                        await client_w.drain()
                        return
                    if fault == "delay":
                        # the injected fault itself: a slow network, not a wait
                        await asyncio.sleep(a * self.rates.max_delay_s)
                    if fault == "duplicate":
                        await self._send_twice(request, upstream_port)
                    # A fresh upstream connection per request: one the server closed while
                    # idle (or died with) would fail requests the proxy meant to pass.
                    up_r, up_w = await asyncio.open_connection(
                        LOOPBACK, upstream_port, limit=1 << 20
                    )
                    try:
                        up_w.write(request)
                        await up_w.drain()
                        method = request.split(b" ", 1)[0]
                        if fault == "lost_answer":
                            await _relay_answer(up_r, method, None, None)
                            return
                        cut = b if fault == "cut" else None
                        if not await _relay_answer(up_r, method, client_w, cut):
                            return
                    finally:
                        await _close(up_w)
            except (_Closed, ConnectionError, asyncio.IncompleteReadError, ValueError):
                return
            finally:
                await _close(client_w)

    async def _send_twice(self, request: bytes, port: int) -> None:
        """The extra copy, on a connection of its own; its answer is read and dropped."""
        reader, writer = await asyncio.open_connection(LOOPBACK, port, limit=1 << 20)
        try:
            writer.write(request)
            await writer.drain()
            await _relay_answer(reader, request.split(b" ", 1)[0], None, None)
        finally:
            await _close(writer)
