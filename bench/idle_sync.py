"""An idle sync with the Python SDK: what ``Replica.sync()`` costs the device when nothing
changed (issue 13).

    python -m bench.idle_sync                  # 5 runs of 30 idle syncs each
    python -m bench.idle_sync --runs 7 --syncs 50

Starts a real ``waystation serve`` (SQLite), logs a replica in (not timed), syncs it once
so it holds the feed (one record), then times ``rep.sync()`` again and again: each is one
pull answered 304. Reports, per run, the median over its syncs of:

- ``cpu_ms``: this process's CPU time (user + system, every thread) per sync — the
  client's own cost; the server is another process;
- ``wall_ms``: the sync's wall time (client + loopback + server).

Prints the median over the runs (and their range) as one JSON object. Runs alternate
nothing: compare builds by running this on each, one after the other, a few times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tests.support import LiveServer
from waystation.client import Replica

PASSWORD = "bench-idle"


def _run(url: str, workdir: Path, run: int, syncs: int) -> dict[str, float]:
    """One replica, ``syncs`` idle syncs; the medians of their CPU and wall time."""
    rep = Replica.open(
        workdir / f"idle-{run}.db",
        server=url,
        username="worker",
        password=PASSWORD,
        device_name=f"bench-idle-{run}",
    )
    try:
        rep.put(
            "symptom_logs",
            {
                "patient_id": f"p-idle-{run}",
                "facility_id": "f-1",
                "date": "2025-11-30",
                "severity": 2,
            },
        )
        first = rep.sync()
        assert first.ok, first.error
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(syncs):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            result = rep.sync()
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
            assert result.ok and (result.pushed, result.pulled) == (0, 0), result.summary()
    finally:
        rep.close()
    return {"cpu_ms": statistics.median(cpu) * 1000, "wall_ms": statistics.median(wall) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.idle_sync", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--syncs", type=int, default=30, help="idle syncs per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp))
        server.start()
        try:
            server.add_user("worker", "health_worker", ["facility:f-1"], PASSWORD)
            runs = [_run(server.url, Path(tmp), n, args.syncs) for n in range(args.runs)]
        finally:
            server.stop()
    out: dict[str, Any] = {"runs": args.runs, "syncs_per_run": args.syncs}
    for key in ("cpu_ms", "wall_ms"):
        values = [r[key] for r in runs]
        out[key] = round(statistics.median(values), 2)
        out[f"{key}_range"] = [round(min(values), 2), round(max(values), 2)]
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
