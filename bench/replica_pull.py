"""A new device's first sync with the Python SDK, in its own process (for its peak RSS).

    python -m bench.replica_pull URL USERNAME PASSWORD REPLICA_FILE
    python -m bench.replica_pull --apply-only URL USERNAME PASSWORD REPLICA_FILE
    WS_KEY=... python -m bench.replica_pull --passphrase-env WS_KEY [--apply-only] ...

Opens a fresh replica (``Replica.open``: login + device registration, not timed), runs
``Replica.sync`` (pull of everything, applied into the replica file) and then a second,
idle ``sync``. Prints one JSON object: records pulled, seconds, requests and wire bytes of
each sync, and this process's VmHWM.

The first figure cannot exceed the server's own pull rate: pages are applied while the next
one is fetched, so once the client is faster than the server, it waits for the server.
``--apply-only`` measures the client alone: it first fetches every page of the feed over
HTTP (not timed, and held in memory, so its VmHWM says nothing), then times ``Replica.sync``
with a transport that answers each pull with the server's recorded answer to it — the same
pages, the same SDK code path, minus the wait for the server. ``--passphrase-env NAME``
makes the replica an encrypted one (SQLCipher), keyed from that variable's passphrase (the
key derivation happens in ``Replica.open``, not timed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.server import Wire, proc_peak_rss_kib
from waystation.client import HttpTransport, Replica
from waystation.client.cursor import Cursor
from waystation.client.engine import PAGE_SIZE
from waystation.client.transport import PullPage, PushAnswer, RemoteDigest


@dataclass
class Replay:
    """The server's recorded pull answers, replayed; every other call goes to the server."""

    real: HttpTransport
    pages: dict[str, PullPage] = field(default_factory=dict)

    def record(self) -> int:
        since, records = Cursor.start(), 0
        while True:
            page = self.real.pull(since, limit=PAGE_SIZE)
            self.pages[str(since)] = page
            records += len(page.changes)
            if not page.has_more:
                return records
            since = page.cursor

    def pull(self, since: Cursor, *, limit: int, etag: str | None = None) -> PullPage:
        if str(since) not in self.pages:  # past the recorded feed: ask the server
            return self.real.pull(since, limit=limit, etag=etag)
        return self.pages[str(since)]

    def push(self, device_id: str, changes: Sequence[Mapping[str, Any]]) -> PushAnswer:
        return self.real.push(device_id, changes)

    def status(self) -> dict[str, Any]:
        return self.real.status()

    def healthz(self) -> bool:
        return self.real.healthz()

    def digest(self, collections: Sequence[str] | None = None) -> RemoteDigest:
        return self.real.digest(collections)

    def wait_for_changes(self, since: Cursor, *, wait: float = 25.0) -> bool:
        return self.real.wait_for_changes(since, wait=wait)

    def close(self) -> None:
        self.real.close()


def main() -> None:
    args = sys.argv[1:]
    apply_only = "--apply-only" in args
    passphrase = None
    if "--passphrase-env" in args:
        at = args.index("--passphrase-env")
        passphrase = os.environ[args[at + 1]]
        del args[at : at + 2]
    positional = [a for a in args if a != "--apply-only"]
    if len(positional) != 4 or any(a.startswith("-") for a in positional):
        raise SystemExit(__doc__)
    url, username, password, path = positional
    rep = Replica.open(
        path,
        server=url,
        username=username,
        password=password,
        device_name="bench-new-device",
        passphrase=passphrase,
    )
    out: dict[str, object] = {}
    if apply_only:
        replay = Replay(HttpTransport(url, rep.session, httpx.Client(timeout=300)))
        replay.record()
        start = time.perf_counter()
        result = rep.sync(transport=replay)
        elapsed = time.perf_counter() - start
        replay.close()
        if result.error:
            raise SystemExit(f"apply-only sync failed: {result.error}")
        out["apply_only"] = {
            "pulled": result.pulled,
            "seconds": elapsed,
            "pages": len(replay.pages),
        }
    else:
        for name in ("initial", "idle"):
            wire = Wire()
            transport = HttpTransport(
                url, rep.session, httpx.Client(timeout=300, event_hooks=wire.hooks())
            )
            start = time.perf_counter()
            result = rep.sync(transport=transport)
            elapsed = time.perf_counter() - start
            transport.close()
            if result.error:
                raise SystemExit(f"{name} sync failed: {result.error}")
            out[name] = {
                "pulled": result.pulled,
                "seconds": elapsed,
                "requests": wire.requests,
                "bytes_sent": wire.sent,
                "bytes_received": wire.received,
            }
    rep.close()
    out["peak_rss_kib"] = proc_peak_rss_kib(os.getpid())
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
