"""A real ``waystation serve`` process on loopback, and devices that speak to it.

``BenchServer`` runs the server exactly as an operator would (``python -m waystation
serve``) over a fresh SQLite file, or over ``--db postgresql://.../bench_{name}``: each
server (``storm_0``, ``conflict_1``, ``db_10000``...) then gets its own database, created
empty (dropped first if a previous run left it). ``peak_rss_kib`` reads the process's
``VmHWM``.

``Device`` is one registered device with its own ``httpx.Client``; it gzips push bodies
as the SDK does (client/wire.py) and counts bytes on the wire: request line + headers +
body as sent, status line + headers + body as received (compressed).
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from argon2 import PasswordHasher

from tests.support import child_pids, free_port
from waystation.core.schema import health_schema
from waystation.store import open_store

# Cheap argon2 parameters: the server verifies whatever parameters a hash carries.
_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "bench-pw"


class BenchServer:
    def __init__(self, workdir: Path, db_url: str | None = None, workers: int = 1) -> None:
        self.workdir = workdir
        self.workers = workers
        workdir.mkdir(parents=True, exist_ok=True)
        # "{name}" in a PostgreSQL URL gives each server its own (existing, empty) database
        name = workdir.name.replace("-", "_")
        self.db_url = (
            db_url.replace("{name}", name) if db_url else (f"sqlite:///{workdir / 'server.db'}")
        )
        if db_url and "{name}" in db_url:
            _fresh_database(self.db_url)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def add_user(self, username: str, role: str, scopes: list[str]) -> None:
        store = open_store(self.db_url, health_schema(), migrate=True)
        try:
            store.add_user(username, _HASHER.hash(PASSWORD), role, scopes)
        finally:
            store.close()

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waystation",
                "serve",
                "--db",
                self.db_url,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "server.log").read_text()[-2000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """The serving processes: the server itself, or with ``--workers`` its workers
        (children) as well, whose figures add up."""
        return [self.pid, *child_pids(self.pid)] if self.workers > 1 else [self.pid]

    def peak_rss_kib(self) -> int:
        return sum(proc_peak_rss_kib(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far."""
        return sum(proc_cpu_seconds(pid) for pid in self.pids())

    def rss_kib(self) -> int:
        """Memory the processes own (``RssAnon``): ``VmRSS`` also counts the pages of the
        SQLite file mapped (``PRAGMA mmap_size``), which are the kernel's page cache."""
        return sum(proc_status_kib(pid, "RssAnon") for pid in self.pids())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> BenchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _fresh_database(url: str) -> None:
    """Create the (empty) PostgreSQL database ``url`` names, through the maintenance one."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def proc_peak_rss_kib(pid: int) -> int:
    """VmHWM. Note: the server's start-up already peaks at ~140 MiB (an argon2 hash with
    64 MiB memory cost, server/auth.py), so VmRSS at the end says more about growth."""
    return proc_status_kib(pid, "VmHWM")


def _head_bytes(first_line: str, headers: httpx.Headers) -> int:
    # "line\r\n" + "name: value\r\n" per header + "\r\n"
    return len(first_line) + 2 + sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2


class Wire:
    """Requests and bytes through one client, counted as HTTP/1.1 puts them on the wire."""

    def __init__(self) -> None:
        self.requests = 0
        self.sent = 0
        self.received = 0

    def hooks(self) -> dict[str, list[Any]]:
        return {"response": [self._on_response]}

    def _on_response(self, resp: httpx.Response) -> None:
        req = resp.request
        target = req.url.raw_path.decode()
        self.requests += 1
        self.sent += _head_bytes(f"{req.method} {target} HTTP/1.1", req.headers)
        self.sent += int(req.headers.get("content-length", "0"))
        resp.read()
        self.received += (
            _head_bytes(f"HTTP/1.1 {resp.status_code} {resp.reason_phrase}", resp.headers)
            + resp.num_bytes_downloaded
        )

    def total(self) -> int:
        return self.sent + self.received


def user_token(url: str, username: str) -> str:
    resp = httpx.post(
        f"{url}/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=30
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


class Device:
    """One device: its own connection, its own byte counts (``token`` None: no auth, for
    the bare-endpoint ceiling)."""

    def __init__(self, url: str, token: str | None, device_id: str) -> None:
        self.device_id = device_id
        self.wire = Wire()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=url, timeout=120, event_hooks=self.wire.hooks(), headers=headers
        )

    @classmethod
    def register(cls, url: str, user_token: str, device_id: str) -> Device:
        reg = httpx.post(
            f"{url}/v1/devices",
            json={"name": "bench", "device_id": device_id},
            headers={"Authorization": f"Bearer {user_token}"},
            timeout=30,
        )
        reg.raise_for_status()
        return cls(url, str(reg.json()["access_token"]), device_id)

    def push(self, changes: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """POST one gzip-compressed batch: (status, results)."""
        body = gzip.compress(
            orjson.dumps({"device_id": self.device_id, "changes": changes}), compresslevel=6
        )
        resp = self.http.post(
            "/v1/sync/push",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        if resp.status_code != 200:
            return resp.status_code, []
        return 200, orjson.loads(resp.content)["results"]

    def pull(
        self, since: str, limit: int = 1000, etag: str | None = None
    ) -> tuple[int, dict[str, Any], str | None]:
        headers = {"If-None-Match": etag} if etag else {}
        resp = self.http.get(
            "/v1/sync/pull", params={"since": since, "limit": limit}, headers=headers
        )
        body = orjson.loads(resp.content) if resp.status_code == 200 else {}
        return resp.status_code, body, resp.headers.get("etag")

    def close(self) -> None:
        self.http.close()
