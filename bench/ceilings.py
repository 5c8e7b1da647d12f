"""The machine's ceilings, measured in the same run as the scenarios.

- ``sqlite_rows_per_s``: raw ``executemany`` of the same rows (the op's JSON, keyed like the
  records table) in batches of 500, one commit per batch, WAL with ``synchronous=FULL``: the
  most a push can write through SQLite here.
- ``postgres_rows_per_s`` (with ``--db``/``--postgres``): the same rows through psycopg's
  ``executemany``, 500 per transaction, into the PostgreSQL server the scenarios use.
- ``bare_push``: the same gzip'd push bodies, from the same threads, against a bare ASGI
  endpoint under uvicorn (bench/bare_app.py) that only reads and parses them: the most a
  push can go through HTTP + JSON here.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.workload import DeviceWorkload
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


def _rows(devices: int, per_device: int, seed: int) -> list[tuple[Any, ...]]:
    return [
        (
            op["collection"],
            op["record_id"],
            orjson.dumps(op["fields"]).decode(),
            op["hlc"],
            op["op_id"],
        )
        for d in range(devices)
        for op in DeviceWorkload(seed, d, f"d-{d:05d}").ops(per_device)
    ]


def sqlite_rows_per_s(path: Path, devices: int, per_device: int, seed: int) -> float:
    rows = _rows(devices, per_device, seed)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, collection TEXT, id TEXT,"
        " fields BLOB, hlc TEXT, op_id TEXT, UNIQUE (collection, id))"
    )
    start = time.perf_counter()
    for i in range(0, len(rows), 500):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO records (collection, id, fields, hlc, op_id)"
            " VALUES (?, ?, ?, ?, ?)",
            rows[i : i + 500],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def postgres_rows_per_s(url: str, devices: int, per_device: int, seed: int) -> float:
    """The same rows through psycopg's executemany, 500 per transaction, into the server
    the scenarios use (``url``: a fresh, empty database of it)."""
    import psycopg

    rows = _rows(devices, per_device, seed)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE records (seq BIGSERIAL PRIMARY KEY, collection TEXT,"
            " id TEXT, fields TEXT, hlc TEXT, op_id TEXT, UNIQUE (collection, id))"
        )
        start = time.perf_counter()
        for i in range(0, len(rows), 500):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO records (collection, id, fields, hlc, op_id)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection, id) DO UPDATE"
                    " SET fields = excluded.fields, hlc = excluded.hlc, op_id = excluded.op_id",
                    rows[i : i + 500],
                )
        elapsed = time.perf_counter() - start
    return len(rows) / elapsed


class BareServer:
    """bench/bare_app.py under uvicorn in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("bare ASGI app did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bare_push(work: list[list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """The push storm's bodies, from the same threads, against the bare endpoint."""
    from bench.scenarios import push_all
    from bench.server import Device

    bare = BareServer()
    try:
        pushers = [Device(bare.url, None, f"d-{d:05d}") for d in range(len(work))]
        out = push_all(pushers, work)
        for p in pushers:
            p.close()
        return out
    finally:
        bare.stop()
