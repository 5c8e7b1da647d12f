"""One soak client: a real process writing to its own replica and syncing through the
fault proxy, until its parent SIGKILLs it (bench/soak.py).

``python -m bench.soak_client REPLICA LOG CLIENT SEED`` repeats: one write (a new patient
``soak c<CLIENT> #<n>`` and, in the same local transaction, an increment of
``delta(n)`` to the client's own stock counter), then a log line ``{"n": n}`` appended
only AFTER the SDK call has returned (the write is acknowledged locally), then sometimes a
sync. On start it logs ``{"start": n}``: the first write of this process gets number n,
one past the highest the replica holds, so a write that a kill left out of the log is
never numbered twice (the checker allows exactly that write, n - 1, to be missing from
the log; see ``bench.soak_check``).
"""

from __future__ import annotations

import os
import random
import sys
import time

from waystation.client import Replica, RetryPolicy

FACILITY = "f-soak"
SOAK_USER, SOAK_PASSWORD = "soak", "pw"  # every client signs in as this health worker
# Ops are never given up on in a soak: the faults are the point, not a reason to stop.
SOAK_RETRIES = RetryPolicy(max_retries=1_000_000, initial_s=0.05, max_wait_s=0.5, jitter_s=0.05)


def delta(n: int) -> int:
    """The increment of write ``n`` (varied, so a lost or doubled one shows in the sum)."""
    return 1 + (n * 7919) % 13


def inventory_id(client: int) -> str:
    return f"soak-stock-c{client}"


def patient_id(client: int, n: int) -> str:
    return f"soak-c{client}-n{n}"


def village(client: int) -> str:
    return f"c{client}"


def highest_written(rep: Replica, client: int) -> int:
    """The highest write number this client's replica holds (0 for none)."""
    return max(
        (int(p["id"].rsplit("-n", 1)[1]) for p in rep.query("patients", village=village(client))),
        default=0,
    )


def main(path: str, log_path: str, client: int, seed: int) -> None:
    rng = random.Random(seed)
    rep = Replica(path, retry_policy=SOAK_RETRIES, http_timeout=5.0)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    n = highest_written(rep, client) + 1
    os.write(log, f'{{"start": {n}}}\n'.encode())
    deadline = time.monotonic() + 3600  # bounded even if the parent forgets it
    while time.monotonic() < deadline:
        with rep.atomic():
            rep.put(
                "patients",
                {
                    "name": f"soak c{client} #{n}",
                    "facility_id": FACILITY,
                    "village": village(client),
                },
                id=patient_id(client, n),
            )
            rep.increment("pharmacy_inventory", inventory_id(client), "quantity", delta(n))
        os.write(log, f'{{"n": {n}}}\n'.encode())  # acknowledged locally
        n += 1
        if rng.random() < 0.5:
            rep.sync()
        time.sleep(rng.random() * 0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
