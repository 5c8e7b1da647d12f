"""The faults soak: clients write and sync through a fault proxy while servers and
clients are SIGKILLed at random; then everyone syncs cleanly and the checker compares.

``python -m bench.soak [--clients N] [--server-kills K] [--client-kills K]
[--requests R] [--postgres] [--seed S] [--deadline SECONDS]``

Real processes throughout: ``waystation serve`` (one on SQLite; two on one PostgreSQL
database with ``--postgres``, killed one at a time), ``bench.soak_client`` per device,
and the fault proxy (tests/fault_proxy.py: kept beside the tests, which use it most, as
bench/postgres.py uses tests/pg.py). Every loop has a count and a deadline; the seed is
printed, so a run replays its choices (not the OS's timing). Exit status 0 when the
checker (bench/soak_check.py) finds nothing wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak_check import Findings, check
from bench.soak_client import FACILITY, SOAK_RETRIES, inventory_id
from tests.fault_proxy import FaultProxy, FaultRates
from tests.support import LiveServer
from waystation.client import Replica

RATES = FaultRates(
    drop=0.03,
    bad_gateway=0.03,
    lost_answer=0.03,
    cut=0.03,
    duplicate=0.03,
    delay=0.05,
    max_delay_s=0.2,
)


@dataclass
class Figures:
    seed: int = 0
    clients: int = 0
    server_kills: int = 0
    client_kills: int = 0
    proxy: dict[str, int] = field(default_factory=dict)
    server_requests: int = 0
    clean_proxy_requests: int = 0
    clean_server_requests: int = 0
    setup_s: float = 0.0  # servers up, user and replicas set up
    wall_s: float = 0.0


def _access_lines(paths: list[Path], *, probes: bool = True) -> int:
    """Lines in the servers' access logs; without ``probes``, ``/healthz`` ones left out
    (a server's start is awaited on /healthz straight, not through the proxy, and its
    line may land after the start returned)."""
    return sum(
        1
        for p in paths
        if p.exists()
        for line in p.read_bytes().splitlines()
        if probes or b'"path":"/healthz"' not in line
    )


def _settled_lines(paths: list[Path], expected: int, timeout_s: float = 30.0) -> int:
    """The access logs' line count (probes left out) once it reaches ``expected`` (a
    server writes a line just after its answer, so the last ones may lag the client), or
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (lines := _access_lines(paths, probes=False)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # polling, not a wait for the condition
    return lines


class Clients:
    """The client processes, each restarted after a kill on the same replica and log."""

    def __init__(self, work: Path, count: int, seed: int) -> None:
        self.work = work
        self.rng = random.Random(seed)
        self.replicas = [work / f"client{i}.db" for i in range(count)]
        self.logs = {i: work / f"client{i}.log" for i in range(count)}
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count

    def start(self, i: int) -> None:
        with open(self.work / f"client{i}.err", "ab") as err:
            self.procs[i] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.soak_client",
                    str(self.replicas[i]),
                    str(self.logs[i]),
                    str(i),
                    str(self.rng.randrange(1 << 30)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
        self.procs[i] = None

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"client {i} exited by itself ({proc.returncode}): "
                    f"{(self.work / f'client{i}.err').read_text()[-2000:]}"
                )


def _setup(servers: list[LiveServer], clients: Clients, proxy_url: str) -> None:
    """A user, each client's stock record, and each replica logged in (through the
    proxy, faults off)."""
    servers[0].add_user("soak", "health_worker", [f"facility:{FACILITY}"])
    for i, path in enumerate(clients.replicas):
        with Replica.open(
            path, server=proxy_url, username="soak", password="pw", retry_policy=SOAK_RETRIES
        ) as rep:
            rep.put(
                "pharmacy_inventory",
                {"facility_id": FACILITY, "medicine_id": "m-soak"},
                id=inventory_id(i),
            )
            _sync_clean(rep)


def _sync_clean(rep: Replica, attempts: int = 50) -> None:
    """Sync until a run finishes without error and nothing is left to push."""
    rep.retry_failed()
    for _ in range(attempts):
        result = rep.sync()
        if result.error is None and rep.pending_count() == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{rep.path}: no clean sync in {attempts} attempts")


# A restarted server serves this long (seconds, at random) before the next kill: killed
# the moment it answered, a lone SQLite server would spend the fault phase starting, and
# the requests through the proxy would meet no server.
SERVER_UPTIME_S = (1.0, 4.0)
START_TIMEOUT_S = 120.0  # a loaded 2-core machine starts a server slowly; bounded still


@contextlib.contextmanager
def _serving(work: Path, db_url: str | None, count: int) -> Iterator[list[LiveServer]]:
    """``count`` servers on ``db_url`` (None: one SQLite file in ``work``), each with its
    access log ``access-<i>.log``; stopped on the way out."""
    servers = [
        LiveServer(
            work,
            db_url=db_url,
            name=f"server{i}" if count > 1 else "server",
            extra_args=["--access-log", str(work / f"access-{i}.log")],
        )
        for i in range(count)
    ]
    try:
        for server in servers:
            server.start(timeout=START_TIMEOUT_S)
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def _servers(work: Path, postgres: bool, postgres_url: str | None) -> Iterator[list[LiveServer]]:
    """One server on SQLite; or two on one PostgreSQL database: ``postgres_url`` (an empty
    database), else a throwaway cluster started here."""
    if not postgres:
        with _serving(work, None, 1) as servers:
            yield servers
        return
    if postgres_url is not None:
        with _serving(work, postgres_url, 2) as servers:
            yield servers
        return
    from tests.pg import LocalCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
    cluster = LocalCluster(bin_dir)
    cluster.start(durable=True)
    try:
        with _serving(work, cluster.new_database("soak"), 2) as servers:
            yield servers
    finally:
        cluster.stop()


def _run_faults(
    team: Clients,
    servers: list[LiveServer],
    proxy: FaultProxy,
    figures: Figures,
    rng: random.Random,
    deadline: float,
    server_kills: int,
    client_kills: int,
    requests: int,
) -> None:
    """Start the clients, then kill servers (one at a time) and clients at random until the
    targets are met or the deadline passes."""
    for i in range(len(team.procs)):
        team.start(i)
    serving_until = 0.0  # no server is killed before it has served a while
    while time.monotonic() < deadline and not (
        figures.server_kills >= server_kills
        and figures.client_kills >= client_kills
        and proxy.counts["requests"] >= requests
    ):
        time.sleep(rng.uniform(0.05, 0.6))
        team.check_alive()
        if (
            figures.server_kills < server_kills
            and time.monotonic() >= serving_until
            and rng.random() < 0.5
        ):
            victim = rng.choice(servers)  # one at a time: the other goes on serving
            victim.kill()
            figures.server_kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            victim.start(timeout=START_TIMEOUT_S)
            serving_until = time.monotonic() + rng.uniform(*SERVER_UPTIME_S)
        if figures.client_kills < client_kills or rng.random() < 0.3:
            i = rng.randrange(len(team.procs))
            team.kill(i)
            figures.client_kills += 1
            team.start(i)
    if time.monotonic() >= deadline:
        print(f"deadline reached: {figures}", file=sys.stderr)


def soak(
    work: Path,
    *,
    clients: int,
    server_kills: int,
    client_kills: int,
    requests: int,
    postgres: bool,
    seed: int,
    deadline_s: float,
    postgres_url: str | None = None,
) -> tuple[Figures, Findings]:
    """One run; returns its figures and what the checker found. With ``postgres``, the
    servers use ``postgres_url`` (an empty database) if given, else a cluster of their
    own."""
    rng = random.Random(seed)
    figures = Figures(seed=seed, clients=clients)
    started = time.monotonic()
    with _servers(work, postgres, postgres_url) as servers:
        access = [work / f"access-{i}.log" for i in range(len(servers))]
        with FaultProxy([s.port for s in servers], RATES, seed=seed) as proxy:
            proxy.enabled = False
            team = Clients(work, clients, seed + 1)
            _setup(servers, team, proxy.url)
            proxy.enabled = True
            try:
                # The deadline bounds the fault phase alone: starting a PostgreSQL
                # cluster and the servers on a loaded machine must not eat into it.
                figures.setup_s = round(time.monotonic() - started, 1)
                _run_faults(
                    team,
                    servers,
                    proxy,
                    figures,
                    rng,
                    time.monotonic() + deadline_s,
                    server_kills,
                    client_kills,
                    requests,
                )
            finally:
                for i in range(clients):
                    team.kill(i)
            # The clean phase: no faults, no kills; its requests must all reach a server
            # (probes apart: see _access_lines).
            # The servers are restarted first, so no request of the fault phase (one a
            # killed client left running on a server, or the proxy was still delaying)
            # can land in an access log after the count below.
            proxy.enabled = False
            for server in servers:
                server.kill()
            time.sleep(2 * RATES.max_delay_s)  # delayed requests meet no server
            for server in servers:
                server.start(timeout=START_TIMEOUT_S)  # its /healthz waits are logged too
            before_proxy = proxy.counts["requests"] - proxy.counts["healthz"]
            before_server = _access_lines(access, probes=False)
            for _ in range(2):  # push everything, then everyone pulls everything
                for path in team.replicas:
                    with Replica(path, retry_policy=SOAK_RETRIES) as rep:
                        _sync_clean(rep)
            # The checker's digests go through the proxy too (faults still off).
            findings = check(servers[0].db_url, team.replicas, team.logs)
            figures.clean_proxy_requests = (
                proxy.counts["requests"] - proxy.counts["healthz"] - before_proxy
            )
            figures.clean_server_requests = (
                _settled_lines(access, before_server + figures.clean_proxy_requests) - before_server
            )
            figures.proxy = dict(proxy.counts)
        figures.server_requests = _access_lines(access)
    if figures.clean_proxy_requests != figures.clean_server_requests:
        findings.problems.append(
            f"clean phase: the proxy forwarded {figures.clean_proxy_requests} requests, "
            f"the servers logged {figures.clean_server_requests}"
        )
    figures.wall_s = round(time.monotonic() - started, 1)
    return figures, findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--server-kills", type=int, default=100)
    parser.add_argument("--client-kills", type=int, default=100)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument(
        "--postgres", action="store_true", help="two servers on one PostgreSQL database"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--deadline", type=float, default=1800.0, help="seconds the fault phase may last"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
    print(f"soak seed {seed}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="waystation-soak-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    figures, findings = soak(
        work,
        clients=args.clients,
        server_kills=args.server_kills,
        client_kills=args.client_kills,
        requests=args.requests,
        postgres=args.postgres,
        seed=seed,
        deadline_s=args.deadline,
    )
    print(figures)
    print(
        f"writes: {findings.logged_writes} logged, {findings.unlogged_writes} unlogged "
        f"(killed before the log line), {findings.server_records} server records"
    )
    print(
        f"digests: {findings.replicas_digest_equal} of {args.clients} replicas equal, "
        f"{findings.collections_verified} collections, "
        f"{findings.records_verified} records verified"
    )
    for problem in findings.problems:
        print(f"PROBLEM: {problem}")
    print("OK" if findings.ok else "FAILED", f"(work directory {work})")
    if findings.ok and not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if findings.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
