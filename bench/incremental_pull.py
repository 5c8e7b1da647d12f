"""Does an incremental pull cost the changes or the database?

Builds SQLite stores of increasing size (half the records in the caller's facility, half
elsewhere) through the real push path, then pulls the last 10 changes as a health worker.
Reports, per size: SQLite VM instructions spent on the pull (a machine-independent count of
work), the median wall time of 7 pulls, and the query plan. A pull that reads O(10) rows
shows the same instruction count at every size.

    python -m bench.incremental_pull [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from waystation.core.access import Principal
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store
from waystation.store.pull import Cursor, changes_since

ADMIN = Principal("u-admin", "admin", "admin", frozenset(), "d-admin")
NURSE = Principal("u-nurse", "nurse", "health_worker", frozenset({"facility:f-1"}), "d-nurse")
CLOCK = Clock("d-bench")


def _patients(n: int, facility: str) -> list[dict[str, Any]]:
    return [
        {
            "op_id": uuid7(),
            "collection": "patients",
            "record_id": uuid7(),
            "op": "upsert",
            "fields": {
                "name": f"patient {i}",
                "facility_id": facility,
                "village": "Ahero",
                "birth_date": "1990-01-01",
                "phone": "+254700000000",
            },
            "hlc": str(CLOCK.send()),
        }
        for i in range(n)
    ]


def build(path: Path, size: int) -> SqlStore:
    store = open_store(str(path), health_schema())
    for _ in range(size // 1000):
        store.push(ADMIN, _patients(500, "f-other") + _patients(500, "f-1"))
    store.push(ADMIN, _patients(10, "f-1"))
    return store


def measure(store: SqlStore) -> tuple[int, float, list[str]]:
    cursor = Cursor(store.current_cursor().seq - 10)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with store.db.read() as conn:
        raw: Any = conn.connection.dbapi_connection
        raw.set_progress_handler(count, 1)
        assert len(changes_since(conn, NURSE, cursor, 500).changes) == 10
        raw.set_progress_handler(None, 0)
        plan = [
            str(row[-1])
            for row in raw.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM records WHERE seq IN (SELECT DISTINCT seq FROM "
                "record_scopes WHERE scope IN ('*', 'facility:f-1') AND seq > ? ORDER BY seq "
                "LIMIT 501) ORDER BY seq LIMIT 501",
                (cursor.seq,),
            )
        ]
    times = []
    for _ in range(7):
        start = time.perf_counter()
        with store.db.read() as conn:
            changes_since(conn, NURSE, cursor, 500)
        times.append(time.perf_counter() - start)
    return steps, statistics.median(times), plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--sizes", default="10000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            start = time.perf_counter()
            store = build(Path(tmp) / f"{size}.db", size)
            built = time.perf_counter() - start
            steps, median, plan = measure(store)
            store.close()
            rows.append((size, steps, median))
            print(
                f"{size:>9} records (built in {built:.1f}s): {steps} VM steps, "
                f"median {median * 1000:.2f} ms"
            )
            for line in plan:
                print(f"{'':>12}plan: {line}")
    base_steps, base_time = rows[0][1], rows[0][2]
    for size, steps, median in rows[1:]:
        print(
            f"{size} vs {rows[0][0]}: work ratio {steps / base_steps:.2f}, "
            f"time ratio {median / base_time:.2f}"
        )


if __name__ == "__main__":
    main()
