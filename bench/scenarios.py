"""The six scenarios of issue 5, each one run: a dict of figures.

Every scenario that writes starts its own ``waystation serve`` on a fresh database, so runs
do not inherit each other's data; ops are generated and devices registered before the clock
starts. Pushes run on one thread per device (one ``httpx.Client`` each), released together
by a barrier, as devices reconnecting at once.
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from bench.ceilings import ROOT
from bench.server import PASSWORD, BenchServer, Device, Wire, user_token
from bench.workload import (
    DeviceWorkload,
    batches,
    facility_of,
    shared_records,
    shared_seed_ops,
)
from waystation.core.access import Principal
from waystation.core.schema import health_schema
from waystation.server.settings import Settings
from waystation.store import open_store

FACILITIES = 10


@dataclass(frozen=True)
class Params:
    workdir: Path
    db_url: str | None  # None: a fresh SQLite file per server
    seed: int = 1
    devices: int = 8
    per_device: int = 2500
    conflict_devices: int = 8
    conflict_per_device: int = 1000
    many_devices: int = 200
    many_ops: int = 20
    sizes: Sequence[int] = (10_000, 100_000)
    incremental_repeats: int = 7
    workers: int = 1  # server processes (waystation serve --workers; PostgreSQL only)


class Pusher(Protocol):
    """What push_all drives: bench.server.Device (also against the bare endpoint)."""

    device_id: str
    wire: Wire

    def push(self, changes: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]: ...


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def push_all(
    pushers: Sequence[Pusher], work: Sequence[list[list[dict[str, Any]]]]
) -> dict[str, Any]:
    """Each pusher sends its batches in order on its own thread; all start together."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(pushers) + 1)

    def run(pusher: Pusher, todo: list[list[dict[str, Any]]]) -> None:
        mine: list[float] = []
        seen: Counter[str] = Counter()
        barrier.wait()
        for batch in todo:
            start = time.perf_counter()
            try:
                status, results = pusher.push(batch)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            mine.append(time.perf_counter() - start)
            if status != 200:
                with lock:
                    errors.append(f"HTTP {status}")
            for r in results:
                seen[r["status"]] += 1
                if r.get("superseded"):
                    seen["superseded"] += 1
        with lock:
            latencies.extend(mine)
            outcomes.update(seen)

    threads = [
        threading.Thread(target=run, args=(p, w)) for p, w in zip(pushers, work, strict=True)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ops = sum(len(b) for w in work for b in w)
    wire_bytes = sum(p.wire.total() for p in pushers)
    return {
        "ops": ops,
        "seconds": elapsed,
        "ops_per_s": ops / elapsed,
        "requests": sum(p.wire.requests for p in pushers),
        "latency_ms": {
            k: pct(latencies, q) * 1000 for k, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "bytes_per_record": wire_bytes / ops,
        "bytes_sent_per_record": sum(p.wire.sent for p in pushers) / ops,
        "errors": len(errors),
        "error_samples": errors[:3],
        "outcomes": dict(outcomes),
    }


def _start(params: Params, name: str) -> BenchServer:
    server = BenchServer(params.workdir / name, params.db_url, params.workers)
    for f in range(FACILITIES):
        server.add_user(f"hw-f-{f}", "health_worker", [f"facility:f-{f}"])
    server.add_user("admin", "admin", [])
    server.start()
    return server


def _devices(
    server: BenchServer, ids: Sequence[str], facility: Callable[[int], str]
) -> list[Device]:
    tokens: dict[str, str] = {}
    out = []
    for i, device_id in enumerate(ids):
        user = f"hw-{facility(i)}"
        if user not in tokens:
            tokens[user] = user_token(server.url, user)
        out.append(Device.register(server.url, tokens[user], device_id))
    return out


def replica_pull(server_url: str, path: Path, *, apply_only: bool = False) -> dict[str, Any]:
    """A new device's first sync through the SDK, in a child process (bench/replica_pull);
    ``apply_only``: the client's writes alone, the server's pages replayed from memory."""
    path.unlink(missing_ok=True)
    mode = ["--apply-only"] if apply_only else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.replica_pull",
            *mode,
            server_url,
            "admin",
            PASSWORD,
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=900,
    )
    out: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """The measuring client's own collections out of the way: with them, parsing a page
    of 5,000 changes cost this process ~11 µs per record (half of it the collector
    rescanning the harness's heap), more than the server spends serving it, so the figure
    was the client's. The server's collector is untouched."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def raw_pull_all(device: Device, server: BenchServer, limit: int = 1000) -> dict[str, Any]:
    """Every page since 0 over the wire: records/s, bytes per record, and the CPU the server
    and this client spent per record."""
    before_req, before_bytes = device.wire.requests, device.wire.total()
    cursor, records = "0", 0
    with gc_paused():
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        start = time.perf_counter()
        while True:
            status, body, _ = device.pull(cursor, limit=limit)
            assert status == 200, status
            records += len(body["changes"])
            cursor = body["cursor"]
            if not body["has_more"]:
                break
        elapsed = time.perf_counter() - start
        server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    return {
        "records": records,
        "seconds": elapsed,
        "records_per_s": records / elapsed,
        "requests": device.wire.requests - before_req,
        "bytes_per_record": (device.wire.total() - before_bytes) / max(records, 1),
        "server_cpu_us_per_record": server_cpu * 1e6 / max(records, 1),
        "client_cpu_us_per_record": client_cpu * 1e6 / max(records, 1),
    }


# -- (1) push storm + (2) initial pull of what it wrote --------------------------------


def push_storm(params: Params, run: int) -> dict[str, Any]:
    server = _start(params, f"storm-{run}")
    try:
        ids = [f"d-{d:05d}" for d in range(params.devices)]
        devices = _devices(server, ids, facility_of)
        work = [
            list(batches(DeviceWorkload(params.seed + run, d, ids[d]).ops(params.per_device)))
            for d in range(params.devices)
        ]
        cpu = server.cpu_seconds()
        push = push_all(devices, work)
        # CPU per op: the figure that stays put when the machine is busy with other work
        push["server_cpu_us_per_op"] = (server.cpu_seconds() - cpu) * 1e6 / push["ops"]
        push["server_peak_rss_kib"] = server.peak_rss_kib()
        push["server_rss_kib"] = server.rss_kib()
        admin = Device.register(server.url, user_token(server.url, "admin"), "d-admin-raw")
        pull = raw_pull_all(admin, server)
        pull["client"] = replica_pull(server.url, params.workdir / f"storm-{run}-replica.db")
        pull["server_peak_rss_kib"] = server.peak_rss_kib()
        pull["server_rss_kib"] = server.rss_kib()
        for d in [*devices, admin]:
            d.close()
        return {"push": push, "initial_pull": pull}
    finally:
        server.stop()


# -- (3) incremental pull of 10 changes, (4) idle sync, (2) initial pull by size --------


def build_db(params: Params, size: int) -> BenchServer:
    """A server database of ``size`` records, written through the store's own push path
    (faster than HTTP; the records are the same), then served."""
    server = BenchServer(params.workdir / f"db-{size}", params.db_url, params.workers)
    server.add_user("admin", "admin", [])
    store = open_store(server.db_url, health_schema())
    admin = Principal("u-bench", "bench", "admin", frozenset(), "d-builder")
    devices = max(1, size // 5000)
    try:
        for d in range(devices):
            ops = DeviceWorkload(params.seed, d, f"d-b{d:04d}").ops(size // devices)
            for batch in batches(ops):
                store.push(admin, batch)
    finally:
        store.close()
    server.start()
    return server


def pulls_by_size(server: BenchServer, workdir: Path, size: int, run: int) -> dict[str, Any]:
    """(2) on a database of ``size``: a raw client pulling everything in the largest pages
    the server serves, the SDK's first sync, and the SDK's writes alone."""
    device = Device.register(server.url, user_token(server.url, "admin"), f"d-raw-{size}-{run}")
    try:
        raw = raw_pull_all(device, server, limit=Settings().pull_limit_max)
    finally:
        device.close()
    replica = workdir / f"replica-{size}.db"
    return {
        "raw": raw,
        "sdk": replica_pull(server.url, replica),
        "apply_only": replica_pull(server.url, replica, apply_only=True)["apply_only"],
    }


def incremental(server: BenchServer, params: Params, run: int) -> dict[str, Any]:
    admin_token = user_token(server.url, "admin")
    writer = Device.register(server.url, admin_token, f"d-writer-{run}")
    reader = Device.register(server.url, admin_token, f"d-reader-{run}")
    cursor = str(orjson.loads(reader.http.get("/v1/sync/status").content)["cursor"])
    w = DeviceWorkload(params.seed + 1000 + run, 7, writer.device_id)
    ten = [w.symptom_log() if i % 2 else w.encounter() for i in range(10)]
    status, results = writer.push(ten)
    assert status == 200 and all(r["status"] == "applied" for r in results), results
    times, sizes, reqs = [], [], []
    etag = None
    for _ in range(params.incremental_repeats):
        before = (reader.wire.requests, reader.wire.total())
        start = time.perf_counter()
        status, body, etag = reader.pull(cursor, limit=500)
        times.append(time.perf_counter() - start)
        assert status == 200 and len(body["changes"]) == 10, (status, len(body["changes"]))
        reqs.append(reader.wire.requests - before[0])
        sizes.append(reader.wire.total() - before[1])
    # (4) idle: the same request with its ETag, nothing new since
    idle_before = (reader.wire.requests, reader.wire.sent, reader.wire.received)
    start = time.perf_counter()
    idle_status, _, _ = reader.pull(cursor, limit=500, etag=etag)
    idle = {
        "status": idle_status,
        "seconds": time.perf_counter() - start,
        "requests": reader.wire.requests - idle_before[0],
        "bytes_sent": reader.wire.sent - idle_before[1],
        "bytes_received": reader.wire.received - idle_before[2],
    }
    idle["bytes"] = idle["bytes_sent"] + idle["bytes_received"]
    writer.close()
    reader.close()
    return {
        "ms": statistics.median(times) * 1000,
        "ms_min": min(times) * 1000,
        "bytes": statistics.median(sizes),
        "requests": max(reqs),
        "idle": idle,
    }


# -- (5) conflict-heavy mix --------------------------------------------------------------


def conflict_mix(params: Params, run: int) -> dict[str, Any]:
    server = _start(params, f"conflict-{run}")
    try:
        ids = [f"d-c{d:04d}" for d in range(params.conflict_devices)]
        devices = _devices(server, ids, lambda _i: "f-0")
        shared = shared_records()
        status, _ = devices[0].push(shared_seed_ops(shared))
        assert status == 200
        work = []
        for d, device_id in enumerate(ids):
            w = DeviceWorkload(params.seed + run, d, device_id, facility="f-0")
            work.append(list(batches(w.ops(params.conflict_per_device, shared, 0.2))))
        out = push_all(devices, work)
        out["server_peak_rss_kib"] = server.peak_rss_kib()
        out["server_rss_kib"] = server.rss_kib()
        for dev in devices:
            dev.close()
        return out
    finally:
        server.stop()


# -- (6) many devices, few ops each, at once ----------------------------------------------


def many_devices(params: Params, run: int) -> dict[str, Any]:
    server = _start(params, f"many-{run}")
    try:
        ids = [f"d-m{d:05d}" for d in range(params.many_devices)]
        devices = _devices(server, ids, facility_of)
        work = [
            [DeviceWorkload(params.seed + run, d, ids[d]).ops(params.many_ops)]
            for d in range(params.many_devices)
        ]
        out = push_all(devices, work)
        out["server_peak_rss_kib"] = server.peak_rss_kib()
        out["server_rss_kib"] = server.rss_kib()
        for dev in devices:
            dev.close()
        return out
    finally:
        server.stop()
