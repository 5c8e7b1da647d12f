"""A client process for the crash tests: open a replica, sync it, report each event.

``python -m tests.client.sync_child REPLICA [--page-size N] [--batch-size N]`` prints one
line per sync event (flushed), so the parent can SIGKILL it mid-sync, exactly as a phone
killed by its OS would die. A small page size makes the pull many pages long and a small
batch size the push many batches long, to be killed in the middle of: a sync that ends
before the kill lands tests nothing.
"""

from __future__ import annotations

import argparse

from waystation.client import Replica, SyncEvent, sync_once
from waystation.client.engine import BATCH_SIZE, PAGE_SIZE


def main(path: str, page_size: int, batch_size: int) -> None:
    rep = Replica(path)

    def report(event: SyncEvent) -> None:
        print(event.phase, event.pushed, event.pulled, flush=True)

    rep.subscribe(report)
    result = sync_once(rep, page_size=page_size, batch_size=batch_size)
    print("result", result.error_code or "ok", flush=True)
    rep.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("replica")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args()
    main(args.replica, args.page_size, args.batch_size)
