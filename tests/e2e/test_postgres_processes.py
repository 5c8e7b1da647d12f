"""Several ``waystation serve`` processes on one PostgreSQL database, as in production.

- a push to one process is pulled from another, and a device subscribed to events on the
  other hears of it at once (the latency is measured and printed);
- the ordering test: 8 writers push through 3 processes at once while a puller follows the
  change feed; every committed change must be seen exactly once, in cursor order. Run
  against servers whose seq allocator is naive (``WAYSTATION_UNSAFE_NAIVE_SEQ=1``: allocated
  in a transaction of its own, committed at once, as a SEQUENCE would be), the same test
  catches the changes such an allocator lets a puller skip — so its passing on the real
  allocator means something.
"""

from __future__ import annotations

import itertools
import random
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.pg import PostgresCluster
from tests.support import EventStream, LiveServer, SyncApi
from waystation.core.ids import uuid7

WRITERS = 8
PROCESSES = 3
ROUND_S = 2.5
NAIVE_ROUNDS = 6
FACILITY = "f-1"


def start_servers(
    workdir: Path, db_url: str, count: int, env: dict[str, str] | None = None
) -> list[LiveServer]:
    """``count`` servers on one new database, started at once (so they race to migrate it
    and to create its signing key, as a fleet restarting together does)."""
    servers = [LiveServer(workdir, db_url=db_url, env=env, name=f"server{i}") for i in range(count)]
    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(s.start) for s in servers]:
            future.result()
    return servers


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster
) -> Iterator[list[LiveServer]]:
    """3 servers with the real (commit-ordered) seq allocator, for the whole module."""
    yield from _fleet(tmp_path_factory.mktemp("fleet"), postgres, None)


@pytest.fixture
def naive_fleet(tmp_path: Path, postgres: PostgresCluster) -> Iterator[list[LiveServer]]:
    """3 servers whose seq allocator does not order commits (tests only)."""
    yield from _fleet(tmp_path, postgres, {"WAYSTATION_UNSAFE_NAIVE_SEQ": "1"})


def _fleet(
    workdir: Path, postgres: PostgresCluster, env: dict[str, str] | None
) -> Iterator[list[LiveServer]]:
    servers = start_servers(workdir, postgres.new_database(), PROCESSES, env)
    yield servers
    for server in servers:
        server.stop()
    for server in servers:
        assert "Traceback" not in server.log(), server.log()[-3000:]


def device(server: LiveServer, role: str = "health_worker") -> SyncApi:
    name = f"{role}-{uuid7()[-12:]}"
    server.add_user(name, role, [f"facility:{FACILITY}"])
    return SyncApi(server.url, name)


def test_a_push_to_one_process_is_pulled_and_heard_on_the_other(
    fleet: list[LiveServer],
) -> None:
    one, other = fleet[0], fleet[1]
    tablet = device(one)
    clinic = device(other)
    pid = uuid7()
    assert (
        tablet.push([tablet.change("patients", pid, {"name": "Achieng", "facility_id": FACILITY})])[
            0
        ]["status"]
        == "applied"
    )
    seen, cursor = clinic.pull_all()
    assert seen[pid]["fields"]["name"] == "Achieng"
    # one signing key for the fleet: a token from one process works on another
    tablet.http.base_url = other.url
    assert tablet.pull_all()[0][pid]["version"] == 1
    tablet.http.base_url = one.url

    stream = EventStream(clinic, cursor)  # subscribed on the other process
    latencies: list[float] = []
    try:
        for i in range(10):
            sent = time.monotonic()
            seq = tablet.push(
                [tablet.change("patients", uuid7(), {"name": f"p{i}", "facility_id": FACILITY})]
            )[0]["seq"]
            event = stream.next(timeout=5)
            assert event is not None, "no event on the other process within 5 s"
            assert event["id"] == seq
            latencies.append(event["at"] - sent)
            time.sleep(0.05)  # pushes apart, so each latency is one event's, not a burst's
    finally:
        stream.close()
        tablet.close()
        clinic.close()
    print(
        f"\nevent latency across processes (push sent -> event received), 10 pushes: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    assert max(latencies) < 1.0


@dataclass
class Round:
    """What the writers were told and what the puller saw, in order."""

    acked: dict[str, int] = field(default_factory=dict)  # record id -> seq
    seen: list[tuple[int, str]] = field(default_factory=list)  # (seq, record id), in order
    pulls: int = 0

    @property
    def skipped(self) -> set[str]:
        return set(self.acked) - {rid for _, rid in self.seen}

    def check(self) -> list[str]:
        """Everything wrong with what the puller saw (empty: all good)."""
        problems = []
        ids = [rid for _, rid in self.seen]
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} changes seen twice")
        seqs = [seq for seq, _ in self.seen]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            problems.append("the cursor went backwards")
        if self.skipped:
            sample = sorted(self.acked[r] for r in self.skipped)[:10]
            problems.append(
                f"{len(self.skipped)} of {len(self.acked)} committed changes "
                f"never seen by the puller (seqs {sample}...)"
            )
        return problems


def run_round(servers: list[LiveServer], seconds: float) -> Round:
    """8 writers through every process at once, one puller following the feed."""
    result = Round()
    lock = threading.Lock()
    done = threading.Event()
    writers = [device(servers[i % len(servers)]) for i in range(WRITERS)]
    puller = device(servers[0])
    puller_urls = [s.url for s in servers]

    def write(api: SyncApi) -> None:
        rng = random.Random()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = [
                api.change("patients", uuid7(), {"name": "x", "facility_id": FACILITY})
                for _ in range(rng.randint(1, 8))
            ]
            for op, answer in zip(batch, api.push(batch), strict=True):
                assert answer["status"] == "applied", answer
                with lock:
                    result.acked[op["record_id"]] = int(answer["seq"])

    def pull() -> None:
        cursor, turn = "0", 0
        while True:
            finished = done.is_set()  # read before the pull: the last pass sees everything
            url = puller_urls[turn % len(puller_urls)]  # as a load balancer would spread it
            turn += 1
            body = puller.http.get(
                f"{url}/v1/sync/pull", params={"since": cursor, "limit": 200}
            ).json()
            result.pulls += 1
            result.seen.extend((int(c["seq"]), c["id"]) for c in body["changes"])
            cursor = body["cursor"]
            if finished and not body["has_more"]:
                return

    with ThreadPoolExecutor(WRITERS + 1) as pool:
        puller_done = pool.submit(pull)
        for future in [pool.submit(write, api) for api in writers]:
            future.result(timeout=120)
        done.set()
        puller_done.result(timeout=120)
    # every acknowledged change is committed: a fresh pull from zero has them all
    everything, _ = puller.pull_all()
    assert set(result.acked) <= set(everything)
    for api in [*writers, puller]:
        api.close()
    return result


def test_concurrent_writers_through_several_processes_never_let_a_puller_skip_a_change(
    fleet: list[LiveServer],
) -> None:
    result = run_round(fleet, ROUND_S)
    print(
        f"\ncommit-ordered allocator: {len(result.acked)} changes by {WRITERS} writers "
        f"through {PROCESSES} processes, {result.pulls} pulls, problems: "
        f"{result.check() or 'none'}"
    )
    assert len(result.acked) > 100  # enough concurrency to mean something
    assert result.check() == []


def test_the_ordering_test_catches_a_naive_allocator(naive_fleet: list[LiveServer]) -> None:
    outcomes = []
    for attempt in range(1, NAIVE_ROUNDS + 1):
        result = run_round(naive_fleet, ROUND_S)
        outcomes.append(len(result.skipped))
        if result.skipped:
            problems = result.check()
            print(
                f"\nnaive allocator: round {attempt}: {problems}; "
                f"skipped per round so far: {outcomes}"
            )
            assert any("never seen" in p for p in problems)
            return
    pytest.fail(
        f"the naive allocator lost no change in {NAIVE_ROUNDS} rounds: the ordering "
        f"test is not sensitive enough (skipped per round: {outcomes})"
    )
