"""A throwaway PostgreSQL server for the benchmarks and the soak (``python -m bench
--postgres``, ``bench.digest_cost``, ``bench.soak``), with durable settings.

Unlike the tests' cluster (no fsync), this one keeps PostgreSQL's defaults for
``fsync``, ``synchronous_commit`` and ``full_page_writes``: an acknowledged push is on disk,
as it must be in production, so the figures are a production's. Debian's ``postgresql``
package provides the binaries (``scripts/test`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.pg import LocalCluster, find_pg_bin


@contextmanager
def throwaway_cluster() -> Iterator[LocalCluster]:
    """Start a server (``cluster.new_database(name)`` makes an empty database); stopped on
    the way out."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
    cluster = LocalCluster(bin_dir)
    cluster.start(durable=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a server; yield a URL template with ``{name}`` for each bench database."""
    with throwaway_cluster() as cluster:
        base, _, _ = cluster.url.rpartition("/")
        yield base + "/bench_{name}"
