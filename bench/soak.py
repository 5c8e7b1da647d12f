"""The faults soak: clients write and sync through a fault proxy while servers and
clients are SIGKILLed at random; then everyone syncs cleanly and the checker compares.

``python -m bench.soak [--clients N] [--browsers B] [--server-kills K]
[--client-kills K] [--browser-kills K] [--requests R] [--postgres] [--seed S]
[--deadline SECONDS]``

Real processes throughout: ``waystation serve`` (one on SQLite; two on one PostgreSQL
database with ``--postgres``, killed one at a time), ``bench.soak_client`` per Python
device, ``bench.soak_browser`` per browser (the JS client in chromium, its IndexedDB in a
profile that outlives each kill), and the fault proxy (tests/fault_proxy.py: kept beside
the tests, which use it most, as bench/postgres.py uses tests/pg.py). Every loop has a
count and a deadline; the seed is printed, so a run replays its choices (not the OS's
timing). Exit status 0 when the checker (bench/soak_check.py) finds nothing wrong.
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

from bench.soak_browser import kill_browser
from bench.soak_check import Findings, check
from bench.soak_client import FACILITY, SOAK_PASSWORD, SOAK_RETRIES, SOAK_USER, inventory_id
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
    browsers: int = 0
    server_kills: int = 0
    client_kills: int = 0  # browser kills included
    browser_kills: int = 0
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


BROWSER_UPTIME_S = (1.0, 6.0)  # a browser writes this long (at random) before a kill


class Clients:
    """The client processes, each restarted after a kill on the same replica and log:
    ``count`` Python clients, then ``browsers`` browser clients (numbered after them)."""

    BROWSER_STEP_S = 300.0  # a browser's set-up or final sync, on a loaded machine: bounded

    def __init__(self, work: Path, count: int, browsers: int, seed: int, server: str) -> None:
        self.work = work
        self.server = server
        self.rng = random.Random(seed)
        self.replicas = [work / f"client{i}.db" for i in range(count)]
        self.profiles = [work / f"browser{count + i}.profile" for i in range(browsers)]
        self.logs = {i: work / f"client{i}.log" for i in range(count + browsers)}
        self.dumps = [work / f"browser{count + i}.json" for i in range(browsers)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * (count + browsers)
        # A browser takes seconds to start (chromium, the page, unlocking): it is killed
        # only once it writes (its log grew past ``_log_size``), and then after a while.
        self._log_size: dict[int, int] = {}
        self._killable_at: dict[int, float] = {}

    def is_browser(self, i: int) -> bool:
        return i >= len(self.replicas)

    def _profile(self, i: int) -> Path | None:
        """The browser profile of client ``i``; None for a Python client."""
        n = i - len(self.replicas)
        return self.profiles[n] if n >= 0 else None

    def _browser_args(self, i: int, seed: int) -> list[str]:
        profile = self._profile(i)
        assert profile is not None
        return [
            sys.executable,
            "-m",
            "bench.soak_browser",
            str(profile),
            str(self.logs[i]),
            str(i),
            str(seed),
            self.server,
        ]

    def _log_bytes(self, i: int) -> int:
        log = self.logs[i]
        return log.stat().st_size if log.exists() else 0

    def killable(self, i: int) -> bool:
        """Whether client ``i`` may be killed now: a Python client always; a browser once
        it has served ``BROWSER_UPTIME_S`` (at random) since it began to write."""
        if not self.is_browser(i):
            return True
        if i not in self._killable_at:
            if self._log_bytes(i) <= self._log_size[i]:
                return False  # still starting
            self._killable_at[i] = time.monotonic() + self.rng.uniform(*BROWSER_UPTIME_S)
        return time.monotonic() >= self._killable_at[i]

    def start(self, i: int) -> None:
        seed = self.rng.randrange(1 << 30)
        if self.is_browser(i):
            self._log_size[i] = self._log_bytes(i)
            self._killable_at.pop(i, None)
            args = self._browser_args(i, seed)
        else:
            args = [
                sys.executable,
                "-m",
                "bench.soak_client",
                str(self.replicas[i]),
                str(self.logs[i]),
                str(i),
                str(seed),
            ]
        with open(self.work / f"client{i}.err", "ab") as err:
            # A session of its own: a browser client is killed with its Playwright driver.
            self.procs[i] = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )

    def run_browser(self, i: int, *mode: str) -> None:
        """Run browser client ``i`` once in ``mode`` (``--setup``, ``--final DUMP``) and
        wait for it (faults off)."""
        with open(self.work / f"client{i}.err", "ab") as err:
            done = subprocess.run(
                [*self._browser_args(i, 0), *mode],
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=self.BROWSER_STEP_S,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"browser client {i} {' '.join(mode)} failed ({done.returncode}): "
                f"{(self.work / f'client{i}.err').read_text()[-2000:]}"
            )

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            profile = self._profile(i)
            if profile is not None:
                kill_browser(proc.pid, profile)
            else:
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
    servers[0].add_user(SOAK_USER, "health_worker", [f"facility:{FACILITY}"], SOAK_PASSWORD)
    for i, path in enumerate(clients.replicas):
        with Replica.open(
            path,
            server=proxy_url,
            username=SOAK_USER,
            password=SOAK_PASSWORD,
            retry_policy=SOAK_RETRIES,
        ) as rep:
            rep.put(
                "pharmacy_inventory",
                {"facility_id": FACILITY, "medicine_id": "m-soak"},
                id=inventory_id(i),
            )
            _sync_clean(rep)
    for i in range(len(clients.replicas), len(clients.procs)):
        clients.run_browser(i, "--setup")


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
    from bench.postgres import throwaway_cluster

    with throwaway_cluster() as cluster, _serving(work, cluster.new_database("soak"), 2) as servers:
        yield servers


def _run_faults(
    team: Clients,
    servers: list[LiveServer],
    proxy: FaultProxy,
    figures: Figures,
    rng: random.Random,
    deadline: float,
    server_kills: int,
    client_kills: int,
    browser_kills: int,
    requests: int,
) -> None:
    """Start the clients, then kill servers (one at a time) and clients at random until the
    targets are met (browser kills count as client kills too) or the deadline passes."""
    for i in range(len(team.procs)):
        team.start(i)
    serving_until = 0.0  # no server is killed before it has served a while
    while time.monotonic() < deadline and not (
        figures.server_kills >= server_kills
        and figures.client_kills >= client_kills
        and figures.browser_kills >= browser_kills
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
        if (
            figures.client_kills < client_kills
            or figures.browser_kills < browser_kills
            or rng.random() < 0.3
        ):
            ready = [i for i in range(len(team.procs)) if team.killable(i)]
            if ready:
                i = rng.choice(ready)
                team.kill(i)
                figures.client_kills += 1
                figures.browser_kills += team.is_browser(i)
                team.start(i)
    if time.monotonic() >= deadline:
        print(f"deadline reached: {figures}", file=sys.stderr)


def soak(
    work: Path,
    *,
    clients: int,
    browsers: int = 0,
    server_kills: int,
    client_kills: int,
    browser_kills: int = 0,
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
    figures = Figures(seed=seed, clients=clients, browsers=browsers)
    started = time.monotonic()
    with _servers(work, postgres, postgres_url) as servers:
        access = [work / f"access-{i}.log" for i in range(len(servers))]
        # Faults on the sync API only: a browser's page and scripts load whole, as a
        # real app's come from its service worker's cache (a server kill still stops them).
        with FaultProxy(
            [s.port for s in servers], RATES, seed=seed, faulty_paths=["/v1/"]
        ) as proxy:
            proxy.enabled = False
            team = Clients(work, clients, browsers, seed + 1, proxy.url)
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
                    browser_kills if browsers else 0,
                    requests,
                )
            finally:
                for i in range(len(team.procs)):
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
                for n, dump in enumerate(team.dumps):
                    team.run_browser(clients + n, "--final", str(dump))
            # The checker's digests go through the proxy too (faults still off).
            findings = check(servers[0].db_url, team.replicas, team.logs, team.dumps)
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
    parser.add_argument("--clients", type=int, default=6, help="Python clients")
    parser.add_argument(
        "--browsers", type=int, default=1, help="browser clients (the JS client in chromium)"
    )
    parser.add_argument("--server-kills", type=int, default=100)
    parser.add_argument("--client-kills", type=int, default=100)
    parser.add_argument(
        "--browser-kills",
        type=int,
        default=10,
        help="of the client kills, at least these of browsers",
    )
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
        browsers=args.browsers,
        server_kills=args.server_kills,
        client_kills=args.client_kills,
        browser_kills=args.browser_kills,
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
        f"{findings.collections_verified} collections; browsers: "
        f"{findings.browsers_equal} of {args.browsers} copies equal; "
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
