"""What the integrity digest (``GET /v1/sync/digest``) costs the server, by dataset size.

    python -m bench.digest_cost                    # SQLite, 10k and 100k records
    python -m bench.digest_cost --postgres         # and a throwaway PostgreSQL (durable)

Seeds a fresh database through the store's own push (symptom logs of the bench workload,
about 400 bytes each): ``N`` records in facility f-1 and ``N/10`` in f-2, then times
``Store.digest`` (the route's whole work but the HTTP framing: one read transaction, the
cursor, every live record read, decoded and hashed) for a health worker of f-1 and for an
admin (who sees both facilities). Prints the median of ``--runs`` runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.workload import DeviceWorkload, batches
from waystation.core.access import Principal
from waystation.core.schema import health_schema
from waystation.store import Store, open_store

WORKER = Principal("u-worker", "worker", "health_worker", frozenset({"facility:f-1"}))
ADMIN = Principal("u-admin", "admin", "admin", frozenset())


def seed(store: Store, records: int) -> None:
    for facility, count in (("f-1", records), ("f-2", records // 10)):
        workload = DeviceWorkload(1, int(facility[-1]), f"d-{facility}", facility)
        ops = [workload.symptom_log() for _ in range(count)]
        for batch in batches(ops, 5000):
            results = store.push(ADMIN, batch)
            assert all(r["status"] == "applied" for r in results), results[:3]


def median_ms(store: Store, principal: Principal, runs: int) -> tuple[float, int]:
    times = []
    count = 0
    for _ in range(runs):
        started = time.perf_counter()
        found = store.digest(principal)
        times.append((time.perf_counter() - started) * 1000)
        count = sum(entry.count for entry in found.collections.values())
    return statistics.median(times), count


@contextlib.contextmanager
def databases(postgres: bool) -> Iterator[Iterator[tuple[str, str]]]:
    """(engine, a fresh database URL) per request."""
    with tempfile.TemporaryDirectory() as tmp:
        if not postgres:
            yield (("sqlite", f"sqlite:///{Path(tmp) / f'digest-{n}.db'}") for n in range(99))
            return
        from bench.postgres import throwaway_cluster

        with throwaway_cluster() as cluster:
            yield (("postgresql", cluster.new_database("digest")) for _ in range(99))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.digest_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="measure on a throwaway PostgreSQL instead of SQLite",
    )
    args = parser.parse_args()
    print("| engine | records (f-1 + f-2) | caller | live records digested | median ms |")
    print("| --- | --- | --- | --- | --- |")
    with databases(args.postgres) as urls:
        for size in args.sizes:
            engine, url = next(urls)
            store = open_store(url, health_schema())
            try:
                seed(store, size)
                for name, principal in (("health worker f-1", WORKER), ("admin", ADMIN)):
                    store.digest(principal)  # warm the caches, as a serving process is
                    ms, count = median_ms(store, principal, args.runs)
                    print(
                        f"| {engine} | {size:,} + {size // 10:,} | {name} | {count:,} | {ms:.0f} |",
                        flush=True,
                    )
            finally:
                store.close()


if __name__ == "__main__":
    main()
