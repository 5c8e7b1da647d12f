"""Fixtures that start real servers: each test that needs one gets a real process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import database_url, postgres  # noqa: F401  (postgres: a fixture)
from tests.support import LiveServer


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh ``waystation serve`` process on its own SQLite file."""
    server = LiveServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for a whole test module (tests use their own users and records)."""
    server = LiveServer(tmp_path_factory.mktemp("server"))
    server.start()
    yield server
    server.stop()


# -- PostgreSQL (tests/pg.py): the store's and the server's tests run on both engines ------

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine: a SQLite file, or a new PostgreSQL database
    in the test cluster (started on first use)."""
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return database_url(request.param, tmp_path, cluster)


# -- figures a test measured, shown at the end of the run (CI's log) -----------------------

FIGURE = "figure"  # record_property(FIGURE, "one line of text")
_figures: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the figures of each test (from xdist's workers too: their reports carry
    ``user_properties`` to the controller, which prints the summary)."""
    if report.when == "call":
        _figures.extend(str(value) for name, value in report.user_properties if name == FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("figures")
        for line in _figures:
            terminalreporter.write_line(line)
