"""JSON responses written with orjson (push and pull bodies are the hot path), the gzip the
pull route applies itself (server/routes/sync.py), and ``Cache-Control: no-store`` on every
answer of the API."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue
from typing import Any

import orjson
from fastapi.responses import JSONResponse
from isal import isal_zlib
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Answers smaller than this are sent as they are (GZipMiddleware and the pull route alike):
# a few hundred bytes gain little and still cost the gzip header and the CPU.
GZIP_MIN_SIZE = 500

# The deflate of pull pages. An initial pull is mostly the server compressing ~730 bytes
# of JSON per record. Measured on the bench's records (1,000-change pages, one core):
#
#   zlib level      1      2      3      5      6
#   ms per page   3.9    4.1    4.9    8.5   10.9
#   B per record  139    131    127    118    114     (the target is 150)
#
# Level 2 costs 5% more than 1 for 6% fewer bytes and leaves room under the target; above
# 3 the time grows much faster than the bytes shrink. ISA-L (the ``isal`` package)
# compresses a page in ~1 ms at its level 2 (137 B per record), a quarter of zlib's time;
# its output is plain gzip, so clients see no difference.
PULL_GZIP_LEVEL = 2  # ISA-L's levels are 0-3


API_PREFIX = "/v1/"


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every answer under ``/v1/``: they carry patient data,
    tokens or who may see what (errors, 304s and event streams too), and no browser cache,
    proxy or shared cache may keep a copy. The health probes and the API docs carry none.

    An idle sync still costs one 304: no-store stops caches from storing an answer, not a
    client from sending the ETag it remembered itself (the SDK does).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_no_store)


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header admits gzip: ``gzip`` (or ``x-gzip``), else
    ``*``, with a q-value above 0 (RFC 9110: an explicit ``gzip;q=0`` refuses it even when
    ``*`` is accepted)."""
    if not header:
        return False
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[coding.lower()] = q
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def gzip_bytes(body: bytes, level: int) -> bytes:
    """``body`` as a gzip stream."""
    packer = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)  # gzip framing
    out: bytes = packer.compress(body) + packer.flush()
    return out


# ISA-L compresses a small body fed in small pieces at half the ratio it gets in one call
# (a 10-change page: 4.4 KB instead of 1.8 KB), so pieces are handed over in chunks of at
# least this much; a small page is then compressed in one call.
_MIN_CHUNK = 64 * 1024

_packers: ThreadPoolExecutor | None = None
_packers_lock = threading.Lock()


def _packer_pool() -> ThreadPoolExecutor:
    global _packers
    with _packers_lock:
        if _packers is None:
            _packers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="waystation-gzip")
        return _packers


def gzip_pieces(pieces: Iterable[bytes], level: int) -> bytes:
    """One gzip stream of the concatenated ``pieces``, compressed on a helper thread while
    the caller's thread produces the next piece.

    ISA-L releases the GIL while it compresses, so a page's rendering (Python) and its
    compression (~1.6 and ~1 ms of a 1,000-change page) use two cores instead of
    running one after the other. The output is the gzip stream one ``compressobj`` fed the
    same pieces gives.
    """
    queue: SimpleQueue[bytes | None] = SimpleQueue()

    def pack() -> bytes:
        packer = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)  # gzip framing
        out = []
        while (piece := queue.get()) is not None:
            out.append(packer.compress(piece))
        out.append(packer.flush())
        return b"".join(out)

    job = _packer_pool().submit(pack)
    try:
        pending: list[bytes] = []
        size = 0
        for piece in pieces:
            pending.append(piece)
            size += len(piece)
            if size >= _MIN_CHUNK:
                queue.put(b"".join(pending))
                pending, size = [], 0
        if pending:
            queue.put(b"".join(pending))
    finally:
        queue.put(None)  # even on an error: the helper thread must not wait for ever
    return job.result()
