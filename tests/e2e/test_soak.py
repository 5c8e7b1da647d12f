"""The short soak (bench/soak.py) in CI: a few server and client kills (a browser's among
them) and a few hundred requests through the fault proxy, on both engines (PostgreSQL: two
servers on the test cluster's database, killed one at a time); nothing acknowledged lost,
nothing applied twice, every replica equal to the server: the Python ones table by table
and by integrity digest, the browser's (the JS client in chromium) record by record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.soak import soak
from tests.conftest import BACKENDS, FIGURE
from tests.pg import PostgresCluster

REQUESTS = 200  # through the fault proxy, in the fault phase


# Bounded, but generous: on a loaded 2-core machine each server start takes seconds.
@pytest.mark.timeout(400)
@pytest.mark.parametrize("backend", BACKENDS)
def test_short_soak_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
) -> None:
    postgres_url = None
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        postgres_url = cluster.new_database("soak")
    figures, findings = soak(
        tmp_path,
        clients=3,
        browsers=1,
        server_kills=3,
        client_kills=4,
        browser_kills=1,
        requests=REQUESTS,
        postgres=backend == "postgresql",
        seed=13,
        deadline_s=180,
        postgres_url=postgres_url,
    )
    record_property(FIGURE, f"short soak, {backend}: {figures}")
    assert findings.ok, (findings.problems, figures)
    assert figures.server_kills >= 3 and figures.client_kills >= 4, figures
    assert figures.proxy["requests"] >= REQUESTS, figures
    assert findings.logged_writes > 0
    assert findings.replicas_digest_equal == 3, findings
    # A browser is killed only once it writes (bench/soak.py, Clients.killable).
    assert figures.browser_kills >= 1 and findings.browsers_equal == 1, (figures, findings)
    assert '"n"' in (tmp_path / "client3.log").read_text()
    assert findings.records_verified >= findings.logged_writes, findings
