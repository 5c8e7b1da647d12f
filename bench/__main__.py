"""Waystation benchmarks (issue 5): simulated devices against a real ``waystation serve``.

    python -m bench                      # default sizes: about 3-4 minutes on 2 cores
    python -m bench --large              # adds the 1M-record incremental pull
    python -m bench --many-devices 1000  # the issue's 1,000 devices x 20 ops
    python -m bench --db 'postgresql://u:pw@host/bench_{name}'  (one empty database per
                                         server: see bench/server.py)

Writes bench/results/<timestamp>.json, prints a markdown table, and draws docs/perf-*.png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import ceilings, report, scenarios
from bench.server import BenchServer
from bench.workload import DeviceWorkload, batches

ROOT = Path(__file__).resolve().parent.parent


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--db",
        default=None,
        help="postgresql://.../bench_{name}: one database per server, created "
        "(default: fresh SQLite files)",
    )
    p.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL server (durable settings) and use it",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (waystation serve --workers; PostgreSQL only)",
    )
    p.add_argument("--devices", type=int, default=8, help="push storm devices")
    p.add_argument("--per-device", type=int, default=2500, help="push storm backlog per device")
    p.add_argument("--conflict-devices", type=int, default=8)
    p.add_argument("--conflict-per-device", type=int, default=1000)
    p.add_argument("--many-devices", type=int, default=200)
    p.add_argument("--many-ops", type=int, default=20)
    p.add_argument("--sizes", default="10000,100000", help="incremental-pull database sizes")
    p.add_argument("--large", action="store_true", help="add a 1,000,000-record database")
    p.add_argument(
        "--replica-sizes",
        action="store_true",
        help="also time the SDK's initial pull on each --sizes database",
    )
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--plots", type=Path, default=ROOT / "docs")
    p.add_argument("--no-plots", action="store_true")
    return p.parse_args()


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.large:
        sizes.append(1_000_000)
    params = scenarios.Params(
        workdir=workdir,
        db_url=args.db,
        seed=args.seed,
        devices=args.devices,
        per_device=args.per_device,
        conflict_devices=args.conflict_devices,
        conflict_per_device=args.conflict_per_device,
        many_devices=args.many_devices,
        many_ops=args.many_ops,
        sizes=sizes,
        workers=args.workers,
    )
    res: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        # where the output went is not a parameter of the measurement (and names a path)
        "params": {
            k: v for k, v in vars(args).items() if k not in ("workdir", "out", "plots", "no_plots")
        },
        "ceiling_sqlite": [],
        "ceiling_postgres": [],
        "ceiling_bare": [],
        "storm": [],
        "conflict": [],
        "many": [],
        "incremental": {},
        "pulls_by_size": {},
    }
    for r in range(args.runs):
        _log(f"run {r + 1}/{args.runs}: ceilings")
        res["ceiling_sqlite"].append(
            ceilings.sqlite_rows_per_s(
                workdir / "ceiling.db", args.devices, args.per_device, args.seed + r
            )
        )
        if args.db:
            res["ceiling_postgres"].append(
                ceilings.postgres_rows_per_s(
                    BenchServer(workdir / f"ceiling-{r}", args.db).db_url,
                    args.devices,
                    args.per_device,
                    args.seed + r,
                )
            )
        work = [
            list(batches(DeviceWorkload(args.seed + r, d, f"d-{d:05d}").ops(args.per_device)))
            for d in range(args.devices)
        ]
        res["ceiling_bare"].append(ceilings.bare_push(work))
        _log(f"run {r + 1}/{args.runs}: push storm + initial pull")
        res["storm"].append(scenarios.push_storm(params, r))
        _log(f"run {r + 1}/{args.runs}: conflict-heavy mix")
        res["conflict"].append(scenarios.conflict_mix(params, r))
        _log(f"run {r + 1}/{args.runs}: {args.many_devices} devices x {args.many_ops} ops")
        res["many"].append(scenarios.many_devices(params, r))
    for size in sizes:
        _log(f"incremental pull: building {size:,} records")
        server = scenarios.build_db(params, size)
        try:
            res["incremental"][size] = [
                scenarios.incremental(server, params, r) for r in range(args.runs)
            ]
            if args.replica_sizes:
                _log(f"initial pulls of {size:,} records (raw, SDK, SDK writes alone)")
                res["pulls_by_size"][size] = [
                    scenarios.pulls_by_size(server, workdir, size, r) for r in range(args.runs)
                ]
            res["incremental"][size][0]["server_peak_rss_kib"] = server.peak_rss_kib()
        finally:
            server.stop()
    return res


def summarise(res: dict[str, Any]) -> dict[str, report.Figure]:
    f = report.figure
    storm, conflict, many = res["storm"], res["conflict"], res["many"]
    sqlite = statistics.median(res["ceiling_sqlite"])
    bare = statistics.median(b["ops_per_s"] for b in res["ceiling_bare"])
    postgres = bool(res["ceiling_postgres"])
    ceil = [("raw SQLite", sqlite), ("bare ASGI", bare)]
    if postgres:
        ceil.insert(0, ("raw PostgreSQL", statistics.median(res["ceiling_postgres"])))
    figs = {
        "ceiling_sqlite": f(
            "ceiling: raw SQLite executemany, 500/txn, WAL, FULL",
            "rows/s",
            res["ceiling_sqlite"],
            float,
        ),
        **(
            {
                "ceiling_postgres": f(
                    "ceiling: raw PostgreSQL executemany, 500/txn",
                    "rows/s",
                    res["ceiling_postgres"],
                    float,
                )
            }
            if postgres
            else {}
        ),
        "ceiling_bare": f(
            "ceiling: bare ASGI endpoint, parse body only",
            "ops/s",
            res["ceiling_bare"],
            lambda b: b["ops_per_s"],
        ),
        "push_ops": f(
            "(1) push storm: throughput",
            "ops/s",
            storm,
            lambda r: r["push"]["ops_per_s"],
            target=10_000 if postgres else 25_000,
            ceilings=ceil,
        ),
        "push_cpu": f(
            "(1) push storm: server process CPU per op",
            "us",
            storm,
            lambda r: r["push"]["server_cpu_us_per_op"],
        ),
        "push_p50": f(
            "(1) push storm: p50 latency (500 ops/request)",
            "ms",
            storm,
            lambda r: r["push"]["latency_ms"]["p50"],
        ),
        "push_p95": f(
            "(1) push storm: p95 latency", "ms", storm, lambda r: r["push"]["latency_ms"]["p95"]
        ),
        "push_p99": f(
            "(1) push storm: p99 latency", "ms", storm, lambda r: r["push"]["latency_ms"]["p99"]
        ),
        "push_requests": f(
            "(1) push storm: HTTP requests", "", storm, lambda r: r["push"]["requests"]
        ),
        "push_bytes": f(
            "(1) push: bytes on the wire per record (req + resp, gzip)",
            "B",
            storm,
            lambda r: r["push"]["bytes_per_record"],
            target=350,
            at_most=True,
        ),
        "push_rss": f(
            "(1) push storm: server peak RSS (VmHWM, with the mapped db file)",
            "MiB",
            storm,
            lambda r: r["push"]["server_peak_rss_kib"] / 1024,
        ),
        "push_rss_end": f(
            "(1) push storm: server memory after the storm (RssAnon)",
            "MiB",
            storm,
            lambda r: r["push"]["server_rss_kib"] / 1024,
        ),
        "pull_rate": f(
            "(2) initial pull: server records/s (raw HTTP, limit 1000)",
            "rec/s",
            storm,
            lambda r: r["initial_pull"]["records_per_s"],
            target=100_000,
        ),
        "pull_cpu": f(
            "(2) initial pull: server process CPU per record (raw HTTP)",
            "us",
            storm,
            lambda r: r["initial_pull"]["server_cpu_us_per_record"],
        ),
        "pull_bytes": f(
            "(2) initial pull: bytes on the wire per record",
            "B",
            storm,
            lambda r: r["initial_pull"]["bytes_per_record"],
            target=150,
            at_most=True,
        ),
        "pull_requests": f(
            "(2) initial pull: HTTP requests (raw)",
            "",
            storm,
            lambda r: r["initial_pull"]["requests"],
        ),
        "apply_rate": f(
            "(2) initial pull: SDK Replica.sync, pulled + applied",
            "rec/s",
            storm,
            lambda r: (
                r["initial_pull"]["client"]["initial"]["pulled"]
                / r["initial_pull"]["client"]["initial"]["seconds"]
            ),
        ),
        "apply_requests": f(
            "(2) initial pull: SDK HTTP requests",
            "",
            storm,
            lambda r: r["initial_pull"]["client"]["initial"]["requests"],
        ),
        "client_rss": f(
            "(2) initial pull: SDK process peak RSS",
            "MiB",
            storm,
            lambda r: r["initial_pull"]["client"]["peak_rss_kib"] / 1024,
        ),
        "pull_server_rss": f(
            "(2) server memory after push + pulls (RssAnon)",
            "MiB",
            storm,
            lambda r: r["initial_pull"]["server_rss_kib"] / 1024,
        ),
        "sdk_idle_requests": f(
            "(4) idle sync, SDK Replica.sync: HTTP requests",
            "",
            storm,
            lambda r: r["initial_pull"]["client"]["idle"]["requests"],
            target=1,
            at_most=True,
        ),
        "sdk_idle_bytes": f(
            "(4) idle sync, SDK Replica.sync: bytes in all",
            "B",
            storm,
            lambda r: (
                r["initial_pull"]["client"]["idle"]["bytes_sent"]
                + r["initial_pull"]["client"]["idle"]["bytes_received"]
            ),
            target=400,
            at_most=True,
        ),
    }
    sizes = list(res["incremental"])
    for size in sizes:
        runs = res["incremental"][size]
        figs[f"inc_ms_{size}"] = f(
            f"(3) incremental pull of 10 changes, {int(size):,} records",
            "ms",
            runs,
            lambda r: r["ms"],
        )
        figs[f"inc_bytes_{size}"] = f(
            f"(3) incremental pull, {int(size):,}: bytes",
            "B",
            runs,
            lambda r: r["bytes"],
            target=3072,
            at_most=True,
        )
        figs[f"inc_req_{size}"] = f(
            f"(3) incremental pull, {int(size):,}: requests",
            "",
            runs,
            lambda r: r["requests"],
            target=1,
            at_most=True,
        )
        figs[f"idle_bytes_{size}"] = f(
            f"(4) idle pull (304), {int(size):,}: bytes in all",
            "B",
            runs,
            lambda r: r["idle"]["bytes"],
            target=400,
            at_most=True,
        )
        figs[f"idle_status_{size}"] = f(
            f"(4) idle pull, {int(size):,}: HTTP status", "", runs, lambda r: r["idle"]["status"]
        )
    if len(sizes) > 1:
        small = statistics.median(r["ms"] for r in res["incremental"][sizes[0]])
        big = res["incremental"][sizes[-1]]
        figs["inc_ratio"] = f(
            f"(3) incremental pull time ratio {int(sizes[-1]):,} / {int(sizes[0]):,}",
            "x",
            big,
            lambda r: r["ms"] / small,
            target=2,
            at_most=True,
        )
    for size, runs in res["pulls_by_size"].items():
        n = f"{int(size):,}"
        figs[f"raw_pull_{size}"] = f(
            f"(2) initial pull of {n} records: server records/s (raw HTTP, limit 5000)",
            "rec/s",
            runs,
            lambda r: r["raw"]["records_per_s"],
            target=100_000,
        )
        figs[f"raw_pull_cpu_{size}"] = f(
            f"(2) initial pull of {n} records: server process CPU per record",
            "us",
            runs,
            lambda r: r["raw"]["server_cpu_us_per_record"],
        )
        figs[f"raw_pull_client_cpu_{size}"] = f(
            f"(2) initial pull of {n} records: the raw client's CPU per record",
            "us",
            runs,
            lambda r: r["raw"]["client_cpu_us_per_record"],
        )
        figs[f"replica_rate_{size}"] = f(
            f"(2) SDK initial pull of {n} records, pulled + applied",
            "rec/s",
            runs,
            lambda r: r["sdk"]["initial"]["pulled"] / r["sdk"]["initial"]["seconds"],
        )
        figs[f"apply_rate_{size}"] = f(
            f"(2) SDK applies {n} records (its writes alone)",
            "rec/s",
            runs,
            lambda r: r["apply_only"]["pulled"] / r["apply_only"]["seconds"],
            target=50_000,
        )
        figs[f"replica_rss_{size}"] = f(
            f"(2) SDK peak RSS, {n} records", "MiB", runs, lambda r: r["sdk"]["peak_rss_kib"] / 1024
        )
    figs.update(
        {
            "conflict_ops": f(
                "(5) conflict-heavy mix (20% shared): throughput",
                "ops/s",
                conflict,
                lambda r: r["ops_per_s"],
                ceilings=ceil,
            ),
            "conflict_p50": f(
                "(5) conflict mix: p50 latency", "ms", conflict, lambda r: r["latency_ms"]["p50"]
            ),
            "conflict_p95": f(
                "(5) conflict mix: p95 latency", "ms", conflict, lambda r: r["latency_ms"]["p95"]
            ),
            "conflict_p99": f(
                "(5) conflict mix: p99 latency", "ms", conflict, lambda r: r["latency_ms"]["p99"]
            ),
            "conflict_superseded": f(
                "(5) conflict mix: ops applied with superseded fields",
                "",
                conflict,
                lambda r: r["outcomes"].get("superseded", 0),
            ),
            "conflict_errors": f(
                "(5) conflict mix: errors",
                "",
                conflict,
                lambda r: r["errors"],
                target=0,
                at_most=True,
            ),
            "many_ops": f(
                f"(6) {res['params']['many_devices']} devices x "
                f"{res['params']['many_ops']} ops at once: throughput",
                "ops/s",
                many,
                lambda r: r["ops_per_s"],
                ceilings=ceil,
            ),
            "many_p50": f(
                "(6) many devices: p50 push latency", "ms", many, lambda r: r["latency_ms"]["p50"]
            ),
            "many_p95": f(
                "(6) many devices: p95 push latency", "ms", many, lambda r: r["latency_ms"]["p95"]
            ),
            "many_p99": f(
                "(6) many devices: p99 push latency", "ms", many, lambda r: r["latency_ms"]["p99"]
            ),
            "many_errors": f(
                "(6) many devices: errors", "", many, lambda r: r["errors"], target=0, at_most=True
            ),
            "many_bytes": f(
                "(6) many devices: bytes on the wire per record",
                "B",
                many,
                lambda r: r["bytes_per_record"],
                target=350,
                at_most=True,
            ),
            "many_rss": f(
                "(6) many devices: server memory after (RssAnon)",
                "MiB",
                many,
                lambda r: r["server_rss_kib"] / 1024,
            ),
        }
    )
    return figs


def main() -> None:
    args = _args()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.postgres:
            from bench.postgres import throwaway_server

            args.db = stack.enter_context(throwaway_server())
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            res = run(args, args.workdir)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="waystation-bench-"))
            res = run(args, Path(tmp))
    res["seconds"] = time.perf_counter() - started
    figs = summarise(res)
    table = report.markdown(list(figs.values()))
    res["figures"] = {k: vars(v) for k, v in figs.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    (args.out / f"{stamp}.md").write_text(table)
    print(table)
    _log(f"results: {path} ({res['seconds']:.0f} s)")
    if not args.no_plots:
        engine = "postgresql" if args.db else "sqlite"
        if args.workers > 1:
            engine += f"-{args.workers}-workers"
        for png in report.plots(res, figs, args.plots, engine):
            _log(f"plot: {png}")


if __name__ == "__main__":
    main()
