"""A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, a free loopback port.

The cluster starts the first time a test asks for it (once per pytest process, so once per
xdist worker) and is removed at the end. Each test gets a fresh database in it
(``PostgresCluster.new_database``). The binaries come from Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``); as root the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root). ``WAYSTATION_TEST_POSTGRES_URL`` (a URL of a server
where the URL's user may create databases) uses an existing server instead.

When PostgreSQL is missing the tests that need it fail, saying how to install it: a suite
that silently skips half its backends proves nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import free_port

_INSTALL_HINT = (
    "PostgreSQL is needed by the tests of the PostgreSQL backend and was not found under "
    "/usr/lib/postgresql/*/bin. Install it with `apt-get install -y postgresql` (scripts/test "
    "does it when run as root on Debian), set WAYSTATION_TEST_PG_BIN to the directory of "
    "initdb and pg_ctl, or point WAYSTATION_TEST_POSTGRES_URL at a server where the user may "
    "create databases."
)


def find_pg_bin() -> Path | None:
    """The bin directory of the newest installed PostgreSQL, or None."""
    given = os.environ.get("WAYSTATION_TEST_PG_BIN")
    if given:
        return Path(given)
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found:
        on_path = shutil.which("initdb")
        return Path(on_path).parent if on_path else None

    def version(path: Path) -> tuple[int, ...]:
        name = path.parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    return max(found, key=version)


class PostgresCluster:
    """A running PostgreSQL server; ``url`` reaches its maintenance database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._count = 0

    def new_database(self, prefix: str = "ws") -> str:
        """Create an empty database; return its ``postgresql://`` URL."""
        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}_{int(time.time() * 1000) % 10**8}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"


class LocalCluster(PostgresCluster):
    """initdb + pg_ctl in a temp dir; stopped and removed by ``stop()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.user = "waystation"
        self._as: list[str] = []
        # Not under pytest's tmp dir: as root the cluster belongs to `postgres`, who must be
        # able to reach it (pytest's base temp dir is private to root).
        self.root = Path(tempfile.mkdtemp(prefix="waystation-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "running as root, and there is no `postgres` user to run the test "
                    "PostgreSQL server as (PostgreSQL refuses to run as root): " + _INSTALL_HINT
                )
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        super().__init__(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres")

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self, *, durable: bool = False) -> None:
        """Tuned for throwaway test data unless ``durable`` (benchmarks): no fsync (the
        tests never crash PostgreSQL itself); room for several server processes' pools."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        )
        unsafe = ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=300",
                *([] if durable else unsafe),
                "-c shared_buffers=64MB" if not durable else "-c shared_buffers=256MB",
                "-c log_min_messages=warning",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The test PostgreSQL server (started on first use, once per pytest process)."""
    external = os.environ.get("WAYSTATION_TEST_POSTGRES_URL")
    if external:
        yield PostgresCluster(external)
        return
    bin_dir = find_pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.fail(_INSTALL_HINT)
    cluster = LocalCluster(bin_dir)
    try:
        cluster.start()
    except RuntimeError as error:
        cluster.stop()
        pytest.fail(f"could not start the test PostgreSQL server: {error}")
    yield cluster
    cluster.stop()


def database_url(kind: str, tmp_dir: Path, cluster: PostgresCluster | None) -> str:
    """A fresh, empty database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_dir / 'store.db'}"
    assert cluster is not None
    return cluster.new_database()
