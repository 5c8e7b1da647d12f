"""The raw initial pull alone: one database of ``--size`` records, ``--runs`` new devices
each pulling everything in the largest pages the server serves, as scenario (2) of
``python -m bench --replica-sizes`` does, without the other scenarios (a few minutes
instead of ten). Prints one JSON line per run and the medians.

    python -m bench.initial_pull [--size 100000] [--runs 3] [--role admin|health_worker]

``--role health_worker`` pulls as a health worker of one facility (the scope-filtered
path, a tenth of the records) instead of an administrator.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import orjson

from bench.scenarios import FACILITIES, Params, build_db, raw_pull_all
from bench.server import Device, user_token
from waystation.server.settings import Settings


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.initial_pull", description=__doc__.split("\n")[0]
    )
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--role", choices=("admin", "health_worker"), default="admin")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="waystation-bench-") as tmp:
        params = Params(workdir=Path(tmp), db_url=None, seed=args.seed)
        server = build_db(params, args.size)
        try:
            user = "admin"
            if args.role == "health_worker":
                server.add_user("hw-f-0", "health_worker", ["facility:f-0"])
                user = "hw-f-0"
            runs = []
            for run in range(args.runs):
                device = Device.register(server.url, user_token(server.url, user), f"d-raw-{run}")
                try:
                    runs.append(raw_pull_all(device, server, limit=Settings().pull_limit_max))
                finally:
                    device.close()
                print(orjson.dumps(runs[-1]).decode(), flush=True)
        finally:
            server.stop()
    print(
        orjson.dumps(
            {
                "size": args.size,
                "role": args.role,
                "facilities": FACILITIES,
                "median_records_per_s": statistics.median(r["records_per_s"] for r in runs),
                "median_server_cpu_us_per_record": statistics.median(
                    r["server_cpu_us_per_record"] for r in runs
                ),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
