"""A process appending audit entries, for the concurrent-append test.

``python -m tests.store.audit_child DB_URL COUNT TAG GATE`` opens the store, creates
``GATE/TAG.ready``, waits for ``GATE/go`` (so that every child starts appending at once),
appends COUNT entries with actor TAG (``details.n`` = 0..COUNT-1), then prints the wall
times of its first and last append.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.support import wait_until
from waystation.core.audit import AuditEvent
from waystation.core.schema import health_schema
from waystation.store import open_store


def main(db_url: str, count: int, tag: str, gate: Path) -> None:
    store = open_store(db_url, health_schema())
    try:
        (gate / f"{tag}.ready").touch()
        wait_until((gate / "go").exists, 60, what="the go signal", every=0.005)
        first = time.time()
        for n in range(count):
            store.audit(
                AuditEvent(
                    "auth.login", actor_user_id=tag, details={"n": n}, scopes=(f"facility:{tag}",)
                )
            )
        print(first, time.time(), flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
