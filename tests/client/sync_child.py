"""A client process for the crash tests: open a replica, sync it, report each event.

``python -m tests.client.sync_child REPLICA`` prints one line per sync event (flushed), so
the parent can SIGKILL it mid-sync, exactly as a phone killed by its OS would die.
"""

from __future__ import annotations

import sys

from waystation.client import Replica, SyncEvent


def main(path: str) -> None:
    rep = Replica(path)

    def report(event: SyncEvent) -> None:
        print(event.phase, event.pushed, event.pulled, flush=True)

    rep.subscribe(report)
    result = rep.sync()
    print("result", result.error_code or "ok", flush=True)
    rep.close()


if __name__ == "__main__":
    main(sys.argv[1])
