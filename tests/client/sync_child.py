"""A client process for the crash tests: open a replica, sync it, report each event.

``python -m tests.client.sync_child REPLICA [PAGE_SIZE]`` prints one line per sync event
(flushed), so the parent can SIGKILL it mid-sync, exactly as a phone killed by its OS would
die. A small ``PAGE_SIZE`` makes the pull many pages long, to be killed in the middle of.
"""

from __future__ import annotations

import sys

from waystation.client import Replica, SyncEvent, sync_once


def main(path: str, page_size: int | None = None) -> None:
    rep = Replica(path)

    def report(event: SyncEvent) -> None:
        print(event.phase, event.pushed, event.pulled, flush=True)

    rep.subscribe(report)
    result = rep.sync() if page_size is None else sync_once(rep, page_size=page_size)
    print("result", result.error_code or "ok", flush=True)
    rep.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
