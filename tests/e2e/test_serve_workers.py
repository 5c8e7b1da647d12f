"""``waystation serve --workers N``: several processes behind one port, on PostgreSQL.

What an operator relies on: every push is applied once whichever worker takes it, a
device hears (over events) of a change another worker applied, a worker that dies is
replaced while the others keep answering, SIGTERM stops them all, and SQLite refuses the
option with a message saying why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.pg import PostgresCluster
from tests.support import EventStream, LiveServer, SyncApi, child_pids, wait_until
from waystation.core.ids import uuid7

WORKERS = 2
FACILITY = "f-1"


def workers_of(server: LiveServer, want: int, timeout: float = 20) -> set[int]:
    """The server's worker pids, once ``want`` of them answer on the port."""
    proc = server.proc
    assert proc is not None

    def all_workers() -> set[int]:
        # multiprocessing's spawn may add a helper process; workers are python children
        # whose command line is the spawn entry point
        pids = set()
        for pid in child_pids(proc.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                pids.add(pid)
        return pids if len(pids) == want else set()

    return wait_until(all_workers, timeout, what=f"{want} workers", every=0.1)


@pytest.fixture
def server(tmp_path: Path, postgres: PostgresCluster) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path, db_url=postgres.new_database(), extra_args=["--workers", str(WORKERS)]
    )
    live.start(timeout=40)
    yield live
    live.stop()
    assert "Traceback" not in live.log(), live.log()[-3000:]


def device(server: LiveServer) -> SyncApi:
    name = f"hw-{uuid7()[-12:]}"
    server.add_user(name, "health_worker", [f"facility:{FACILITY}"])
    return SyncApi(server.url, name)


def test_pushes_through_every_worker_are_applied_once_and_pulled_by_all(server: LiveServer) -> None:
    workers_of(server, WORKERS)
    tablets = [device(server) for _ in range(6)]
    clinic = device(server)
    stream = EventStream(clinic, "0")
    sent: dict[str, str] = {}

    def push_backlog(api: SyncApi) -> None:
        for _ in range(4):
            batch = [
                api.change("patients", uuid7(), {"name": "x", "facility_id": FACILITY})
                for _ in range(50)
            ]
            results = api.push(batch)
            assert [r["status"] for r in results] == ["applied"] * 50
            # the same batch again (a lost answer): recognised, never applied twice
            assert {r["status"] for r in api.push(batch)} == {"duplicate"}
            sent.update({c["record_id"]: api.device_id for c in batch})

    try:
        with ThreadPoolExecutor(len(tablets)) as pool:
            for future in [pool.submit(push_backlog, api) for api in tablets]:
                future.result(timeout=120)
        seen, _ = clinic.pull_all()
        assert set(seen) == set(sent)
        assert {change["version"] for change in seen.values()} == {1}
        # the events stream (held by one worker) heard of changes other workers applied
        heard = 0
        deadline = time.monotonic() + 10
        while heard < len(tablets) * 4 and time.monotonic() < deadline:
            heard += stream.next(timeout=1) is not None
        assert heard >= 1
    finally:
        stream.close()
        for api in [*tablets, clinic]:
            api.close()


def test_a_killed_worker_is_replaced_and_the_others_keep_answering(server: LiveServer) -> None:
    before = workers_of(server, WORKERS)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    tablet = device(server)  # served by a surviving worker meanwhile
    try:
        record = uuid7()
        assert (
            tablet.push(
                [tablet.change("patients", record, {"name": "Achieng", "facility_id": FACILITY})]
            )[0]["status"]
            == "applied"
        )

        def replaced() -> set[int]:
            pids = workers_of(server, WORKERS)
            return pids if victim not in pids else set()

        after = wait_until(replaced, 30, what="the killed worker's replacement", every=0.2)
        assert victim not in after and len(after) == WORKERS
        assert record in tablet.pull_all()[0]
    finally:
        tablet.close()


def test_sigterm_stops_every_worker(server: LiveServer) -> None:
    pids = workers_of(server, WORKERS)
    server.stop()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        )
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=1)


def test_sqlite_refuses_several_workers_and_says_why(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "waystation",
            "serve",
            "--db",
            str(tmp_path / "one.db"),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    message = " ".join(run.stderr.split())
    assert "--workers above 1 needs PostgreSQL" in message
    assert "Traceback" not in run.stderr
