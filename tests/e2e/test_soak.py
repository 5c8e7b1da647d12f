"""The short soak (bench/soak.py) in CI: a few server and client kills and a few hundred
requests through the fault proxy, on both engines; nothing acknowledged lost, nothing
applied twice, every replica equal to the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import soak
from tests.conftest import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_soak_loses_nothing_and_applies_nothing_twice(tmp_path: Path, backend: str) -> None:
    figures, findings = soak(
        tmp_path,
        clients=3,
        server_kills=3,
        client_kills=4,
        requests=250,
        postgres=backend == "postgresql",
        seed=13,
        deadline_s=40,
    )
    assert findings.ok, (findings.problems, figures)
    assert figures.server_kills >= 3 and figures.client_kills >= 4, figures
    assert figures.proxy["requests"] >= 250, figures
    assert findings.logged_writes > 0
