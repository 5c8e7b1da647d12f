"""A new device's first sync with the Python SDK, in its own process (for its peak RSS).

    python -m bench.replica_pull URL USERNAME PASSWORD REPLICA_FILE

Opens a fresh replica (``Replica.open``: login + device registration, not timed), runs
``Replica.sync`` (pull of everything, applied into the replica file) and then a second,
idle ``sync``. Prints one JSON object: records pulled, seconds, requests and wire bytes of
each sync, and this process's VmHWM.
"""

from __future__ import annotations

import os
import sys
import time

import httpx
import orjson

from bench.server import Wire, proc_peak_rss_kib
from waystation.client import HttpTransport, Replica


def main() -> None:
    url, username, password, path = sys.argv[1:5]
    rep = Replica.open(path, server=url, username=username, password=password,
                       device_name="bench-new-device")
    out: dict[str, object] = {}
    for name in ("initial", "idle"):
        wire = Wire()
        transport = HttpTransport(url, rep.session,
                                  httpx.Client(timeout=300, event_hooks=wire.hooks()))
        start = time.perf_counter()
        result = rep.sync(transport=transport)
        elapsed = time.perf_counter() - start
        transport.close()
        if result.error:
            raise SystemExit(f"{name} sync failed: {result.error}")
        out[name] = {"pulled": result.pulled, "seconds": elapsed, "requests": wire.requests,
                     "bytes_sent": wire.sent, "bytes_received": wire.received}
    rep.close()
    out["peak_rss_kib"] = proc_peak_rss_kib(os.getpid())
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
